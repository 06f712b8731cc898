//! The command line: parses settings (see `config`) and runs the chosen subcommand.

use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    todo!()
}
