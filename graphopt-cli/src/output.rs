//! Writing the command's output. `println!` panics when standard output is a pipe whose reader
//! has gone (`graphopt check ... --json | head -1`): here a broken pipe is a normal end of the
//! output, the rest of it is dropped without a message, and the command finishes with its own
//! exit code. Other write errors (a full disk) are the command's error. Messages to standard
//! error never fail the command: when stderr is gone too, there is no one to tell.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to standard output met a broken pipe: nothing is written after that.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to standard output and flushes it; a broken pipe is not an error.
pub fn stdout(text: &str) -> io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        result => result,
    }
}

/// Writes `text` to standard error, ignoring failures.
pub fn stderr(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// `println!` to standard output through [`stdout`]: evaluates to its `io::Result`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`stderr`], which never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, outln};
