//! The functions each engine offers: math.js's common ones, and formula.js's
//! spreadsheet functions. Arrays passed as arguments are flattened, as spreadsheets do.

use evalexpr::{DefaultNumericTypes, EvalexprError, Value as Ev};

type Result = evalexpr::EvalexprResult<Ev, DefaultNumericTypes>;
type Function = fn(&Ev) -> Result;

pub const MATH: &[(&str, Function)] = &[
    ("abs", |v| unary(v, f64::abs)),
    ("sqrt", |v| unary(v, f64::sqrt)),
    ("cbrt", |v| unary(v, f64::cbrt)),
    ("exp", |v| unary(v, f64::exp)),
    ("floor", |v| unary(v, f64::floor)),
    ("ceil", |v| unary(v, f64::ceil)),
    ("sign", |v| {
        unary(v, |x| if x == 0.0 { 0.0 } else { x.signum() })
    }),
    ("sin", |v| unary(v, f64::sin)),
    ("cos", |v| unary(v, f64::cos)),
    ("tan", |v| unary(v, f64::tan)),
    ("log10", |v| unary(v, f64::log10)),
    ("log", log),
    ("pow", |v| binary(v, f64::powf)),
    ("mod", |v| binary(v, |a, b| a - b * (a / b).floor())),
    ("round", round),
    ("min", |v| fold(v, f64::min)),
    ("max", |v| fold(v, f64::max)),
    ("sum", |v| Ok(Ev::Float(numbers(v)?.iter().sum()))),
    ("mean", average),
];

pub const FORMULA: &[(&str, Function)] = &[
    ("ABS", |v| unary(v, f64::abs)),
    ("SQRT", |v| unary(v, f64::sqrt)),
    ("INT", |v| unary(v, f64::floor)),
    ("FLOOR", |v| unary(v, f64::floor)),
    ("CEILING", |v| unary(v, f64::ceil)),
    ("POWER", |v| binary(v, f64::powf)),
    ("MOD", |v| binary(v, |a, b| a - b * (a / b).floor())),
    ("ROUND", round),
    ("SUM", |v| Ok(Ev::Float(numbers(v)?.iter().sum()))),
    ("PRODUCT", |v| Ok(Ev::Float(numbers(v)?.iter().product()))),
    ("AVERAGE", average),
    ("MIN", |v| fold(v, f64::min)),
    ("MAX", |v| fold(v, f64::max)),
    ("COUNT", |v| {
        Ok(Ev::Float(numbers(v).map(|n| n.len()).unwrap_or(0) as f64))
    }),
    ("IF", spreadsheet_if),
    ("AND", |v| Ok(Ev::Boolean(flat(v).iter().all(truthy)))),
    ("OR", |v| Ok(Ev::Boolean(flat(v).iter().any(truthy)))),
    ("NOT", |v| Ok(Ev::Boolean(!truthy(v)))),
    ("CONCATENATE", |v| {
        Ok(Ev::String(flat(v).iter().map(text).collect()))
    }),
    ("LEN", |v| Ok(Ev::Float(text(v).chars().count() as f64))),
    ("UPPER", |v| Ok(Ev::String(text(v).to_uppercase()))),
    ("LOWER", |v| Ok(Ev::String(text(v).to_lowercase()))),
    ("TRIM", |v| {
        Ok(Ev::String(
            text(v).split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    }),
    ("LEFT", |v| substring(v, |s, n| s.chars().take(n).collect())),
    ("RIGHT", |v| {
        substring(v, |s, n| {
            let count = s.chars().count();
            s.chars().skip(count.saturating_sub(n)).collect()
        })
    }),
];

fn error(message: impl Into<String>) -> EvalexprError<DefaultNumericTypes> {
    EvalexprError::CustomMessage(message.into())
}

/// Arguments as a flat list (a tuple of arguments, arrays inside flattened).
fn flat(v: &Ev) -> Vec<Ev> {
    match v {
        Ev::Tuple(items) => items.iter().flat_map(flat).collect(),
        Ev::Empty => Vec::new(),
        other => vec![other.clone()],
    }
}

fn number(v: &Ev) -> std::result::Result<f64, EvalexprError<DefaultNumericTypes>> {
    match v {
        Ev::Float(f) => Ok(*f),
        Ev::Int(i) => Ok(*i as f64),
        Ev::Boolean(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Ev::String(s) => s
            .trim()
            .parse()
            .map_err(|_| error(format!("{s:?} is not a number"))),
        Ev::Empty => Ok(0.0),
        Ev::Tuple(_) => Err(error("expected a number, got a list")),
    }
}

fn numbers(v: &Ev) -> std::result::Result<Vec<f64>, EvalexprError<DefaultNumericTypes>> {
    flat(v).iter().map(number).collect()
}

fn args(v: &Ev) -> Vec<Ev> {
    match v {
        Ev::Tuple(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn unary(v: &Ev, f: fn(f64) -> f64) -> Result {
    Ok(Ev::Float(f(number(v)?)))
}

fn binary(v: &Ev, f: fn(f64, f64) -> f64) -> Result {
    match args(v).as_slice() {
        [a, b] => Ok(Ev::Float(f(number(a)?, number(b)?))),
        _ => Err(error("takes two arguments")),
    }
}

fn fold(v: &Ev, f: fn(f64, f64) -> f64) -> Result {
    let all = numbers(v)?;
    let first = *all
        .first()
        .ok_or_else(|| error("takes at least one number"))?;
    Ok(Ev::Float(all.into_iter().fold(first, f)))
}

fn average(v: &Ev) -> Result {
    let all = numbers(v)?;
    if all.is_empty() {
        return Err(error("takes at least one number"));
    }
    Ok(Ev::Float(all.iter().sum::<f64>() / all.len() as f64))
}

fn round(v: &Ev) -> Result {
    let (x, digits) = match args(v).as_slice() {
        [x] => (number(x)?, 0.0),
        [x, d] => (number(x)?, number(d)?),
        _ => return Err(error("takes a number and optional digits")),
    };
    let scale = 10f64.powi(digits as i32);
    Ok(Ev::Float((x * scale).round() / scale))
}

fn log(v: &Ev) -> Result {
    match args(v).as_slice() {
        [x] => Ok(Ev::Float(number(x)?.ln())),
        [x, base] => Ok(Ev::Float(number(x)?.log(number(base)?))),
        _ => Err(error("takes a number and an optional base")),
    }
}

fn truthy(v: &Ev) -> bool {
    match v {
        Ev::Boolean(b) => *b,
        Ev::Float(f) => *f != 0.0,
        Ev::Int(i) => *i != 0,
        Ev::String(s) => !s.is_empty(),
        Ev::Tuple(items) => !items.is_empty(),
        Ev::Empty => false,
    }
}

fn text(v: &Ev) -> String {
    match v {
        Ev::String(s) => s.clone(),
        // As formula.js does: JavaScript's String(n) of the number as computed.
        Ev::Float(f) => crate::lang::number::float_text(*f),
        Ev::Int(i) => i.to_string(),
        Ev::Boolean(b) => b.to_string().to_uppercase(),
        Ev::Empty => String::new(),
        Ev::Tuple(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
    }
}

fn spreadsheet_if(v: &Ev) -> Result {
    match args(v).as_slice() {
        [c, a] => Ok(if truthy(c) {
            a.clone()
        } else {
            Ev::Boolean(false)
        }),
        [c, a, b] => Ok(if truthy(c) { a.clone() } else { b.clone() }),
        _ => Err(error("takes a condition and one or two values")),
    }
}

fn substring(v: &Ev, f: fn(&str, usize) -> String) -> Result {
    match args(v).as_slice() {
        [s] => Ok(Ev::String(f(&text(s), 1))),
        [s, n] => Ok(Ev::String(f(&text(s), number(n)?.max(0.0) as usize))),
        _ => Err(error("takes a text and a count")),
    }
}
