//! `quorum train filter` end to end on the shipped `models/tiny-reasoner`:
//! six generated arithmetic problems, k = 4; the rates file, the kept
//! records, the histogram printed and the PNG agree with each other and
//! with the band, the kept file loads back with its pass rates, the same
//! seed gives the same rates, and bad input fails naming the flag or line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn quorum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorum"))
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-reasoner")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Six test-split problems of the model's training lengths, the kinds it
/// solves only sometimes at temperature 1 (4-digit subtraction, 3×2-digit
/// multiplication): with these seeds some land in the band and some not.
fn problems(dir: &Path) -> PathBuf {
    let path = dir.join("six.jsonl");
    ok(quorum()
        .args(["data", "gen", "arithmetic", "--n", "6", "--seed", "1"])
        .args(["--split", "test", "--ops", "sub,mul", "--digits", "4"])
        .args(["--mul-digits", "3", "--mul-by", "2", "--out"])
        .arg(&path)
        .output()
        .unwrap());
    path
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn filter(data: &Path, dir: &Path, tag: &str, extra: &[&str]) -> Command {
    let mut c = quorum();
    c.args(["train", "filter", "--model"])
        .arg(model())
        .arg("--data")
        .arg(data)
        .args(["--seed", "7"])
        .arg("--out")
        .arg(dir.join(format!("kept-{tag}.jsonl")))
        .arg("--rates")
        .arg(dir.join(format!("rates-{tag}.jsonl")))
        .arg("--plot")
        .arg(dir.join(format!("hist-{tag}.png")))
        .args(extra);
    c
}

#[test]
fn rates_kept_records_histogram_and_png_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = problems(tmp.path());
    let stdout = ok(filter(&data, tmp.path(), "a", &["-k", "4", "--chunk", "4"])
        .output()
        .unwrap());

    let input = jsonl(&data);
    let rates = jsonl(&tmp.path().join("rates-a.jsonl"));
    assert_eq!(rates.len(), 6);
    let mut counts = [0usize; 5];
    let mut kept_ids = Vec::new();
    for (i, r) in rates.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["id"], input[i]["id"]);
        assert_eq!(r["prompt"], input[i]["prompt"]);
        assert_eq!(r["answer"], input[i]["answer"]);
        assert_eq!(r["k"], 4);
        let c = r["correct"].as_u64().unwrap() as usize;
        assert!(c <= 4);
        let p = r["pass_rate"].as_f64().unwrap();
        assert_eq!(p, c as f64 / 4.0, "a multiple of 1/4");
        let in_band = (0.2..=0.8).contains(&p);
        assert_eq!(r["kept"], in_band);
        counts[c] += 1;
        if in_band {
            kept_ids.push((r["id"].clone(), p));
        }
    }

    // The kept records: the input records in band, in order, every field
    // kept, `pass_rate` added.
    let kept = jsonl(&tmp.path().join("kept-a.jsonl"));
    assert_eq!(kept.len(), kept_ids.len());
    assert!(
        !kept.is_empty() && kept.len() < 6,
        "both kept and dropped problems: {kept_ids:?}"
    );
    for (k, (id, p)) in kept.iter().zip(&kept_ids) {
        assert_eq!(&k["id"], id);
        assert_eq!(k["pass_rate"].as_f64(), Some(*p));
        let original = input.iter().find(|r| &r["id"] == id).unwrap();
        for (key, v) in original.as_object().unwrap() {
            assert_eq!(&k[key], v, "field {key}");
        }
    }
    // ... and they load back as tasks with their pass rates.
    let tasks = quorum_train::data::load_tasks(
        &[tmp.path().join("kept-a.jsonl")],
        &quorum_train::data::LoadOptions::default(),
    )
    .unwrap()
    .tasks;
    let loaded: Vec<Option<f64>> = quorum_train::filter::task_pass_rates(&tasks);
    let want: Vec<Option<f64>> = kept_ids.iter().map(|(_, p)| Some(*p)).collect();
    assert_eq!(loaded, want);

    // The printed summary: problems, kept, one histogram line per bin with
    // the counts of the rates file.
    let kept_n = kept_ids.len();
    assert!(
        stdout.contains(&format!("6 problems, k = 4: {kept_n} kept")),
        "{stdout}"
    );
    for (c, n) in counts.iter().enumerate() {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{c}/4  ")))
            .unwrap_or_else(|| panic!("no histogram line {c}/4 in\n{stdout}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[2], n.to_string(), "{line}");
    }
    let mean: f64 = rates
        .iter()
        .map(|r| r["pass_rate"].as_f64().unwrap())
        .sum::<f64>()
        / 6.0;
    assert!(
        stdout.contains(&format!("mean pass rate {mean:.3}")),
        "{stdout}"
    );
    assert!(stdout.contains("tokens/s"), "{stdout}");

    // A PNG of the plot size.
    let png = std::fs::read(tmp.path().join("hist-a.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let reader = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap();
    assert_eq!(
        (reader.info().width, reader.info().height),
        quorum::plot::PLOT_SIZE
    );

    // Same seed, other chunking: the same answers, so the same rates.
    ok(
        filter(&data, tmp.path(), "b", &["-k", "4", "--chunk", "32"])
            .output()
            .unwrap(),
    );
    assert_eq!(jsonl(&tmp.path().join("rates-b.jsonl")), rates);
}

#[test]
fn bad_input_names_the_flag_or_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = problems(tmp.path());
    let err = failed(
        filter(&data, tmp.path(), "x", &["-k", "4", "--band", "0.8,0.2"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("--band"), "{err}");
    assert!(err.contains("LOW = 0.8 is above HIGH = 0.2"), "{err}");
    let err = failed(
        filter(&data, tmp.path(), "x", &["-k", "4", "--band", "0.2"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("--band") && err.contains("no comma"), "{err}");
    let err = failed(
        filter(&data, tmp.path(), "x", &["-k", "0"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("-k"), "{err}");

    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\": \"Compute 1+1.\", \"answer\": \"2\"}\n{\"prompt\": \"Compute 2+2.\"}\n",
    )
    .unwrap();
    let err = failed(
        filter(&bad, tmp.path(), "x", &["-k", "4"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains(&format!("{}:2: missing field `answer`", bad.display())),
        "{err}"
    );
    assert!(!tmp.path().join("kept-x.jsonl").exists());

    // Nothing in the band (one token answers nothing): a warning and an
    // empty file, not a failure.
    let out = filter(
        &data,
        tmp.path(),
        "e",
        &["-k", "2", "--max-new-tokens", "1"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = ok(out);
    assert!(stdout.contains("6 problems, k = 2: 0 kept"), "{stdout}");
    assert!(
        stdout.contains("12 of 12 answers cut at 1 tokens"),
        "{stdout}"
    );
    let kept = std::fs::read_to_string(tmp.path().join("kept-e.jsonl")).unwrap();
    assert!(kept.is_empty());
    assert!(
        stderr.contains("warning: no problem has a pass rate in [0.2, 0.8]"),
        "{stderr}"
    );
    assert_eq!(jsonl(&tmp.path().join("rates-e.jsonl")).len(), 6);
}
