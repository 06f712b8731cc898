//! The `autonomous-dev` binary: a thin shell over the library crate.

fn main() -> std::process::ExitCode {
    autonomous_dev::cli::main()
}
