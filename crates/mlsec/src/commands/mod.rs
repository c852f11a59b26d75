//! One module per subcommand.

mod rules;
mod scan;

use std::process::ExitCode;

use crate::args::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Rules(args) => rules::run(&args),
    }
}
