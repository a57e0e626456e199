//! Column arithmetic as a person writes it, one small operation per step,
//! least significant column first.
//!
//! - addition: `7+5+0=12 4+8+1=13` (digit + digit + carry);
//! - subtraction: `14-9-0=5 3-1-1=1` (a leading `1` marks a borrowed ten);
//! - multiplication by one digit: `6*7+0=42 6*4+4=28` (digit × digit + carry).
//!
//! The result digits come out in column order (`r:` lines, least
//! significant first); the traces then restate the number.

/// Decimal digits of `n`, least significant first (`0` → `[0]`).
pub fn digits_lsf(mut n: u128) -> Vec<u8> {
    let mut d = Vec::new();
    loop {
        d.push((n % 10) as u8);
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

/// Digits (least significant first) as text: `[2, 8, 0, 2]` → `2802`.
pub fn lsf_text(d: &[u8]) -> String {
    d.iter().map(|&x| char::from(b'0' + x)).collect()
}

/// The number of digits given least significant first (leading zeros dropped).
pub fn from_lsf(d: &[u8]) -> u128 {
    d.iter()
        .rev()
        .fold(0u128, |acc, &x| acc * 10 + u128::from(x))
}

/// A column trace: its steps and the result digits (least significant first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub steps: Vec<String>,
    pub digits: Vec<u8>,
}

impl Columns {
    /// `steps… r:DIGITS`.
    pub fn line(&self) -> String {
        format!("{} r:{}", self.steps.join(" "), lsf_text(&self.digits))
    }
}

/// Column addition of any number of rows (digits least significant first);
/// each step is `d1+d2+…+carry=sum`. A final carry adds its digits.
pub fn add(rows: &[Vec<u8>]) -> Columns {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut steps = Vec::with_capacity(width);
    let mut digits = Vec::with_capacity(width + 1);
    let mut carry = 0u32;
    for i in 0..width {
        let mut sum = carry;
        let mut terms = String::new();
        for row in rows {
            let d = row.get(i).copied().unwrap_or(0);
            sum += u32::from(d);
            terms.push_str(&format!("{d}+"));
        }
        steps.push(format!("{terms}{carry}={sum}"));
        digits.push((sum % 10) as u8);
        carry = sum / 10;
    }
    if carry > 0 {
        digits.extend(digits_lsf(u128::from(carry)));
    }
    Columns { steps, digits }
}

/// Column subtraction `top - bottom` with `top >= bottom`; each step is
/// `t-b-borrow=d`, written `1t-b-borrow=d` when the column borrows a ten.
/// The digits keep their leading zeros (`1000-999` → `1000`).
pub fn sub(top: u128, bottom: u128) -> Columns {
    debug_assert!(top >= bottom);
    let (t, b) = (digits_lsf(top), digits_lsf(bottom));
    let mut steps = Vec::with_capacity(t.len());
    let mut digits = Vec::with_capacity(t.len());
    let mut borrow = 0i32;
    for (i, &td) in t.iter().enumerate() {
        let bd = i32::from(b.get(i).copied().unwrap_or(0));
        let td = i32::from(td);
        let mut d = td - bd - borrow;
        if d < 0 {
            d += 10;
            steps.push(format!("1{td}-{bd}-{borrow}={d}"));
            borrow = 1;
        } else {
            steps.push(format!("{td}-{bd}-{borrow}={d}"));
            borrow = 0;
        }
        digits.push(d as u8);
    }
    Columns { steps, digits }
}

/// `x` times one digit `m`; each step is `m*d+carry=value`. `shift` zeros
/// lead the digits (the partial product's place).
pub fn mul_digit(x: u128, m: u8, shift: usize) -> Columns {
    let mut steps = Vec::new();
    let mut digits = vec![0u8; shift];
    let mut carry = 0u32;
    for d in digits_lsf(x) {
        let v = u32::from(m) * u32::from(d) + carry;
        steps.push(format!("{m}*{d}+{carry}={v}"));
        digits.push((v % 10) as u8);
        carry = v / 10;
    }
    if carry > 0 {
        digits.extend(digits_lsf(u128::from(carry)));
    }
    Columns { steps, digits }
}

/// Long multiplication: one [`mul_digit`] line per digit of `y` (shifted),
/// then the column addition of the partials when there are several.
/// Returns the lines and the product's digits (least significant first).
pub fn mul(x: u128, y: u128) -> (Vec<String>, Vec<u8>) {
    let partials: Vec<Columns> = digits_lsf(y)
        .into_iter()
        .enumerate()
        .map(|(shift, m)| mul_digit(x, m, shift))
        .collect();
    let mut lines: Vec<String> = partials.iter().map(Columns::line).collect();
    if partials.len() == 1 {
        return (lines, partials[0].digits.clone());
    }
    let rows: Vec<Vec<u8>> = partials.into_iter().map(|p| p.digits).collect();
    let sum = add(&rows);
    lines.push(sum.line());
    (lines, sum.digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addition_columns_and_final_carry() {
        let c = add(&[digits_lsf(34567), digits_lsf(23345)]);
        assert_eq!(
            c.line(),
            "7+5+0=12 6+4+1=11 5+3+1=9 4+3+0=7 3+2+0=5 r:21975"
        );
        let c = add(&[digits_lsf(95), digits_lsf(7)]);
        assert_eq!(c.line(), "5+7+0=12 9+0+1=10 r:201");
        assert_eq!(from_lsf(&c.digits), 102);
    }

    #[test]
    fn subtraction_marks_borrows() {
        let c = sub(5234, 1789);
        assert_eq!(c.line(), "14-9-0=5 13-8-1=4 12-7-1=4 5-1-1=3 r:5443");
        assert_eq!(from_lsf(&c.digits), 3445);
        let c = sub(1000, 999);
        assert_eq!(c.line(), "10-9-0=1 10-9-1=0 10-9-1=0 1-0-1=0 r:1000");
        assert_eq!(from_lsf(&c.digits), 1);
    }

    #[test]
    fn long_multiplication_partials_then_sum() {
        let (lines, d) = mul(347, 26);
        assert_eq!(
            lines,
            vec![
                "6*7+0=42 6*4+4=28 6*3+2=20 r:2802",
                "2*7+0=14 2*4+1=9 2*3+0=6 r:0496",
                "2+0+0=2 8+4+0=12 0+9+1=10 2+6+1=9 r:2209",
            ]
        );
        assert_eq!(from_lsf(&d), 9022);
        let (lines, d) = mul(4821, 7);
        assert_eq!(lines, vec!["7*1+0=7 7*2+0=14 7*8+1=57 7*4+5=33 r:74733"]);
        assert_eq!(from_lsf(&d), 33747);
    }
}
