//! The command line: `serve`, `schematic id|canonical`.

pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
