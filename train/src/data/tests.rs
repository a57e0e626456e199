//! Loader tests: every error names `file:line`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn load_one(path: &Path, opts: &LoadOptions) -> Result<Loaded, DataError> {
    load_tasks(&[path], opts)
}

fn err_text(r: Result<Loaded, DataError>) -> String {
    match r {
        Ok(l) => panic!("expected an error, loaded {} tasks", l.tasks.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn jsonl_happy_path_reads_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "tasks.jsonl",
        concat!(
            r#"{"id": "a", "prompt": "Compute 2+3.", "answer": "5", "solution": "2+3=5"}"#,
            "\n\n",
            r#"{"prompt": "Capital of France?", "answer": "Paris", "verifier": "exact"}"#,
            "\n",
            r#"{"id": 7, "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], "chat_template_kwargs": {"enable_thinking": false}}"#,
            "\n",
            r#"{"prompt": "How many?", "answer": 12}"#,
            "\n",
        ),
    );
    let l = load_one(&p, &LoadOptions::default()).unwrap();
    assert_eq!(l.report.loaded, 4);
    assert_eq!(l.report.skipped, 0);
    let t = &l.tasks;
    assert_eq!(t[0].id, "a");
    assert_eq!(t[0].prompt, Prompt::Text("Compute 2+3.".into()));
    assert_eq!(t[0].answer.as_deref(), Some("5"));
    assert_eq!(t[0].solution.as_deref(), Some("2+3=5"));
    assert_eq!(t[0].verifier, "math");
    assert_eq!(t[0].source.line, 1);
    // The blank line still counts.
    assert_eq!(t[1].source.line, 3);
    assert_eq!(t[1].verifier, "exact");
    assert_eq!(t[1].id, format!("{}:3", p.display()));
    assert_eq!(t[2].id, "7");
    let conv = t[2].to_sft_messages(TargetStyle::Solution).unwrap();
    assert_eq!(conv.messages.len(), 2);
    assert_eq!(conv.enable_thinking(), Some(false));
    assert_eq!(t[2].prompt_messages(), vec![Message::new("user", "Hi")]);
    assert_eq!(t[3].answer.as_deref(), Some("12"));
}

#[test]
fn malformed_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "tasks.jsonl",
        "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\",\n",
    );
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(
        e.contains("tasks.jsonl:2: malformed record: EOF while parsing"),
        "{e}"
    );
    assert!(!e.contains("line 1 column"), "{e}");
}

#[test]
fn non_object_and_bad_utf8_lines_are_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tasks.jsonl", "[1, 2]\n");
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(
        e.ends_with("tasks.jsonl:1: malformed record: expected a JSON object, found a list"),
        "{e}"
    );
    let p = dir.path().join("bytes.jsonl");
    std::fs::write(&p, b"{\"prompt\": \"\xff\"}\n").unwrap();
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(
        e.contains("bytes.jsonl:1: malformed record: not UTF-8"),
        "{e}"
    );
}

#[test]
fn missing_field_names_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "tasks.jsonl",
        "{\"prompt\": \"a\"}\n{\"question\": \"b\", \"answer\": \"1\"}\n",
    );
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(
        e.ends_with("tasks.jsonl:2: missing field `prompt` or `messages`"),
        "{e}"
    );

    let opts = LoadOptions {
        require_answer: true,
        ..LoadOptions::default()
    };
    let p = write(
        dir.path(),
        "noans.jsonl",
        "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\"}\n",
    );
    let e = err_text(load_one(&p, &opts));
    assert!(e.ends_with("noans.jsonl:2: missing field `answer`"), "{e}");
}

#[test]
fn wrong_field_types_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"prompt": "a", "answer": [1]}"#,
            "field `answer`: expected a string or a number, found a list",
        ),
        (
            r#"{"prompt": 3}"#,
            "field `prompt`: expected a string or a list of messages, found a number",
        ),
        (r#"{"prompt": "  "}"#, "field `prompt`: empty prompt"),
        (
            r#"{"messages": [{"role": "user"}]}"#,
            "field `messages`: message 1: missing `content`",
        ),
        (
            r#"{"messages": []}"#,
            "field `messages`: empty list of messages",
        ),
        (
            r#"{"prompt": "a", "solution": 5}"#,
            "field `solution`: expected a string, found a number",
        ),
        (
            r#"{"prompt": "a", "chat_template_kwargs": true}"#,
            "field `chat_template_kwargs`: expected an object, found a boolean",
        ),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        let p = write(dir.path(), &format!("c{i}.jsonl"), &format!("{line}\n"));
        let e = err_text(load_one(&p, &LoadOptions::default()));
        assert!(e.ends_with(&format!("c{i}.jsonl:1: {want}")), "{e}");
    }
}

#[test]
fn unknown_verifier_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "tasks.jsonl",
        "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\", \"answer\": \"1\", \"verifier\": \"mathh\"}\n",
    );
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(
        e.contains("tasks.jsonl:2: verifier `mathh`: unknown verifier `mathh`"),
        "{e}"
    );
    // The default verifier is checked too.
    let opts = LoadOptions {
        verifier: "code".into(),
        ..LoadOptions::default()
    };
    let e = err_text(load_one(&p, &opts));
    assert!(
        e.contains("tasks.jsonl:1: verifier `code`: verifier `code` needs a hook"),
        "{e}"
    );
}

#[test]
fn skip_malformed_counts_and_keeps_the_first_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("{\"prompt\": \"ok\", \"answer\": \"1\"}\n");
    for i in 0..7 {
        text.push_str(&format!("{{\"prompt\": \"bad{i}\"\n"));
    }
    text.push_str("{\"prompt\": \"ok2\", \"verifier\": \"nope\"}\n{\"prompt\": \"ok3\"}\n");
    let p = write(dir.path(), "tasks.jsonl", &text);
    let opts = LoadOptions {
        skip_malformed: true,
        ..LoadOptions::default()
    };
    let l = load_one(&p, &opts).unwrap();
    assert_eq!(l.tasks.len(), 2);
    assert_eq!(l.tasks[1].source.line, 10);
    assert_eq!(l.report.skipped, 8);
    assert_eq!(l.report.first_errors.len(), FIRST_ERRORS);
    assert!(
        l.report.first_errors[0].contains("tasks.jsonl:2: malformed record"),
        "{:?}",
        l.report
    );
    assert!(
        l.report.first_errors[4].contains("tasks.jsonl:6: "),
        "{:?}",
        l.report
    );
}

#[test]
fn empty_dataset_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.jsonl", "\n  \n");
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(
        e.starts_with("no tasks in ") && e.ends_with("empty.jsonl"),
        "{e}"
    );
    let p = write(dir.path(), "allbad.jsonl", "{\n{\n");
    let opts = LoadOptions {
        skip_malformed: true,
        ..LoadOptions::default()
    };
    let e = err_text(load_one(&p, &opts));
    assert!(
        e.ends_with("allbad.jsonl (2 malformed record(s) skipped)"),
        "{e}"
    );
    let none: [&Path; 0] = [];
    assert!(matches!(
        load_tasks(&none, &opts),
        Err(DataError::Empty { .. })
    ));
}

#[test]
fn missing_file_and_unknown_extension() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(load_one(
        &dir.path().join("nope.jsonl"),
        &LoadOptions::default(),
    ));
    assert!(e.contains("nope.jsonl: "), "{e}");
    let p = write(dir.path(), "tasks.csv", "a,b\n");
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(
        e.ends_with("tasks.csv: unknown file type (expected .jsonl, .json, .ndjson or .parquet)"),
        "{e}"
    );
}

const GSM8K_LINE: &str = r#"{"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"}"#;

#[test]
fn gsm8k_columns_load_without_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gsm8k.jsonl", &format!("{GSM8K_LINE}\n"));
    for opts in [
        LoadOptions::gsm8k(),
        LoadOptions {
            fields: FieldMap {
                prompt: "question".into(),
                ..FieldMap::default()
            },
            ..LoadOptions::default() // auto
        },
    ] {
        let l = load_one(&p, &opts).unwrap();
        let t = &l.tasks[0];
        assert!(matches!(&t.prompt, Prompt::Text(q) if q.starts_with("Natalia sold clips")));
        assert_eq!(t.answer.as_deref(), Some("72"));
        assert_eq!(
            t.solution.as_deref(),
            Some("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.")
        );
        assert!(check_references(&l.tasks).is_empty());
        let c = t.to_sft_messages(TargetStyle::Solution).unwrap();
        assert!(c.messages[1]
            .content
            .ends_with("April and May.\n\n\\boxed{72}"));
    }
    // gsm8k format insists on the `####` line.
    let p = write(
        dir.path(),
        "bad.jsonl",
        "{\"question\": \"q\", \"answer\": \"72\"}\n",
    );
    let e = err_text(load_one(&p, &LoadOptions::gsm8k()));
    assert!(
        e.ends_with("bad.jsonl:1: field `answer`: no `#### N` line (answer_format = gsm8k)"),
        "{e}"
    );
}

#[test]
fn math_columns_take_the_last_boxed() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"problem": "What is $\\frac{1}{4}+\\frac{1}{4}$?", "level": "Level 1", "type": "Algebra", "solution": "We add: $\\frac{1}{4}+\\frac{1}{4} = \\boxed{\\frac{1}{2}}$."}"#;
    let p = write(dir.path(), "math.jsonl", &format!("{line}\n"));
    for opts in [
        LoadOptions::math(),
        LoadOptions {
            fields: FieldMap {
                prompt: "problem".into(),
                ..FieldMap::default()
            },
            ..LoadOptions::default()
        },
    ] {
        let l = load_one(&p, &opts).unwrap();
        let t = &l.tasks[0];
        assert_eq!(t.answer.as_deref(), Some(r"\frac{1}{2}"));
        assert!(t.solution.as_deref().unwrap().starts_with("We add"));
        assert!(check_references(&l.tasks).is_empty());
        // The solution already has its \boxed{}: used as written.
        let c = t.to_sft_messages(TargetStyle::Solution).unwrap();
        assert_eq!(c.messages[1].content, t.solution.clone().unwrap());
    }
    let p = write(
        dir.path(),
        "nobox.jsonl",
        "{\"problem\": \"q\", \"solution\": \"it is 5\"}\n",
    );
    let e = err_text(load_one(&p, &LoadOptions::math()));
    assert!(
        e.ends_with("nobox.jsonl:1: field `solution`: no \\boxed{} (answer_format = boxed)"),
        "{e}"
    );
}

#[test]
fn dotted_field_names_reach_nested_objects() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "verl.jsonl",
        r#"{"prompt": [{"role": "user", "content": "2+2?"}], "reward_model": {"ground_truth": "4"}}"#,
    );
    let opts = LoadOptions {
        fields: FieldMap {
            answer: "reward_model.ground_truth".into(),
            ..FieldMap::default()
        },
        ..LoadOptions::default()
    };
    let t = &load_one(&p, &opts).unwrap().tasks[0];
    assert_eq!(t.answer.as_deref(), Some("4"));
    assert_eq!(t.prompt_messages(), vec![Message::new("user", "2+2?")]);
}

#[test]
fn reference_check_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "tasks.jsonl",
        concat!(
            "{\"prompt\": \"a\", \"answer\": \"12\", \"verifier\": \"numeric\"}\n",
            "{\"prompt\": \"b\", \"answer\": \"twelve\", \"verifier\": \"numeric\"}\n",
            "{\"prompt\": \"c\"}\n",
            "{\"prompt\": \"d\", \"answer\": \"24 from 3 8\", \"verifier\": \"countdown\"}\n",
            "{\"prompt\": \"e\", \"answer\": \"24 from x\", \"verifier\": \"countdown\"}\n",
        ),
    );
    let l = load_one(&p, &LoadOptions::default()).unwrap();
    let f = check_references(&l.tasks);
    let lines: Vec<usize> = f.iter().map(|f| f.loc.line).collect();
    assert_eq!(lines, vec![2, 3, 5]);
    assert!(
        f[0].to_string()
            .contains("tasks.jsonl:2: verifier `numeric`: "),
        "{}",
        f[0]
    );
    assert!(
        f[1].to_string()
            .ends_with("tasks.jsonl:3: verifier `math`: no reference answer"),
        "{}",
        f[1]
    );
    let e = ensure_references(&l.tasks).unwrap_err().to_string();
    assert!(
        e.starts_with("3 reference answer(s) cannot be checked"),
        "{e}"
    );
    assert!(
        e.contains("tasks.jsonl:5: verifier `countdown`: number `x` is not an integer"),
        "{e}"
    );
}

/// GSM8K-like Parquet (as HF ships it), one file per codec.
fn write_parquet(path: &Path, compression: Compression, rows: &[(&str, Option<&str>)]) {
    let schema = Arc::new(
        parse_message_type(
            "message schema { REQUIRED BYTE_ARRAY question (UTF8); OPTIONAL BYTE_ARRAY answer (UTF8); }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(compression)
            .build(),
    );
    let mut w = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let questions: Vec<ByteArray> = rows.iter().map(|(q, _)| ByteArray::from(*q)).collect();
    let answers: Vec<ByteArray> = rows
        .iter()
        .filter_map(|(_, a)| a.map(ByteArray::from))
        .collect();
    let defs: Vec<i16> = rows.iter().map(|(_, a)| i16::from(a.is_some())).collect();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>()
        .write_batch(&questions, None, None)
        .unwrap();
    col.close().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    col.typed::<ByteArrayType>()
        .write_batch(&answers, Some(&defs), None)
        .unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
}

#[test]
fn parquet_gsm8k_loads_through_the_same_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        ("What is 6*7?", Some("6*7 = 42\n#### 42")),
        ("What is 10-3?", Some("10-3 = 7\n#### 7")),
    ];
    for (name, codec) in [
        ("snappy.parquet", Compression::SNAPPY),
        ("zstd.parquet", Compression::ZSTD(ZstdLevel::default())),
    ] {
        let p = dir.path().join(name);
        write_parquet(&p, codec, &rows);
        let l = load_one(&p, &LoadOptions::gsm8k()).unwrap();
        assert_eq!(l.tasks.len(), 2);
        assert_eq!(l.tasks[0].prompt, Prompt::Text("What is 6*7?".into()));
        assert_eq!(l.tasks[0].answer.as_deref(), Some("42"));
        assert_eq!(l.tasks[0].solution.as_deref(), Some("6*7 = 42"));
        assert_eq!(l.tasks[1].answer.as_deref(), Some("7"));
        assert_eq!(l.tasks[1].id, format!("{}:2", p.display()));
    }
    // A null answer is a missing field, named with its row.
    let p = dir.path().join("nulls.parquet");
    write_parquet(
        &p,
        Compression::SNAPPY,
        &[("q1", Some("#### 1")), ("q2", None)],
    );
    let e = err_text(load_one(&p, &LoadOptions::gsm8k()));
    assert!(
        e.ends_with("nulls.parquet:2: missing field `answer`"),
        "{e}"
    );
    // JSONL and Parquet in one load, in order.
    let j = write(dir.path(), "more.jsonl", &format!("{GSM8K_LINE}\n"));
    let l = load_tasks(&[dir.path().join("zstd.parquet"), j], &LoadOptions::gsm8k()).unwrap();
    assert_eq!(l.tasks.len(), 3);
    assert_eq!(l.report.files.len(), 2);
    assert_eq!(l.tasks[2].answer.as_deref(), Some("72"));
}

#[test]
fn a_file_that_is_not_parquet_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "fake.parquet", "not parquet at all");
    let e = err_text(load_one(&p, &LoadOptions::default()));
    assert!(e.contains("fake.parquet: cannot read Parquet: "), "{e}");
}
