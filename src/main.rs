//! The `tessera` binary. Everything it does lives in [`tessera::cli`].

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
