//! One error type for the whole engine. Every variant renders as one line that names the
//! value or file at fault and says what to do; the CLI prints it and exits non-zero.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// No adapter could be found or opened (exit code 3).
    NoAdapter(String),
    /// Shapes that cannot work together, named in the message.
    Shape(String),
    /// A request beyond what the device granted (buffer size, workgroups, bindings).
    Limit(String),
    /// A bad argument or config value.
    Invalid(String),
    /// A file that cannot be read or written.
    Io(String),
    /// wgpu reported an error we did not prevent up front.
    Gpu(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Process exit code for this error: 3 when there is no usable GPU adapter, 1 otherwise
    /// (2 is the command line parser's: a bad flag).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoAdapter(_) => 3,
            _ => 1,
        }
    }
}

impl Error {
    /// The message without its kind's prefix.
    pub fn message(&self) -> &str {
        match self {
            Error::NoAdapter(m)
            | Error::Shape(m)
            | Error::Limit(m)
            | Error::Invalid(m)
            | Error::Io(m)
            | Error::Gpu(m) => m,
        }
    }

    /// The same error with `what` (a file, a key) in front of its message: the kind, and so
    /// the prefix and exit code, stay; the prefix is printed once.
    pub fn context(self, what: impl fmt::Display) -> Error {
        let m = format!("{what}: {}", self.message());
        match self {
            Error::NoAdapter(_) => Error::NoAdapter(m),
            Error::Shape(_) => Error::Shape(m),
            Error::Limit(_) => Error::Limit(m),
            Error::Invalid(_) => Error::Invalid(m),
            Error::Io(_) => Error::Io(m),
            Error::Gpu(_) => Error::Gpu(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAdapter(m) => write!(f, "no GPU adapter: {m}"),
            Error::Shape(m) => write!(f, "shape error: {m}"),
            Error::Limit(m) => write!(f, "device limit: {m}"),
            Error::Invalid(m) => write!(f, "invalid input: {m}"),
            Error::Io(m) => write!(f, "i/o error: {m}"),
            Error::Gpu(m) => write!(f, "gpu error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// `shape_err!("matmul: a is {:?}", a)` -> `Err(Error::Shape(...))`.
#[macro_export]
macro_rules! shape_err {
    ($($arg:tt)*) => { Err($crate::error::Error::Shape(format!($($arg)*))) };
}
