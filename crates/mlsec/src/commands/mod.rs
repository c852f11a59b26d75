//! One module per subcommand.

mod drift;
mod gateway;
mod guard;
mod redteam;
mod registry;
mod rules;
mod scan;
mod sign;

use std::process::ExitCode;

use crate::args::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Scan(args) => scan::run(&args),
        Command::Rules(args) => rules::run(&args),
        Command::Keygen(args) => sign::keygen(&args),
        Command::Sign(args) => sign::sign(&args),
        Command::Verify(args) => sign::verify(&args),
        Command::Hash(args) => sign::hash(&args),
        Command::Gateway(args) => gateway::run(&args),
        Command::Guard(args) => guard::run(&args),
        Command::Registry(args) => registry::run(&args),
        Command::Drift(args) => drift::run(&args),
        Command::Data(args) => drift::data(&args),
        Command::Redteam(args) => redteam::run(&args),
        Command::SignModel(args) => sign::sign_model(&args),
        Command::VerifyModel(args) => sign::verify_model(&args),
    }
}
