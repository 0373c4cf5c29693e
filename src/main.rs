//! The `image-factory` binary: parse the command line, run it, exit with its status.

fn main() -> std::process::ExitCode {
    image_factory::cli::main()
}
