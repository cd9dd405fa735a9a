//! Every flag of the command line, in one place.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Lossless compression with a neural network that learns the file while it codes it.
#[derive(Debug, Parser)]
#[command(name = "fade", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads for the model's matrix products (default: all cores).
    #[arg(short = 'T', long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compress IN into OUT.
    Compress(CodeArgs),
    /// Decompress IN into OUT.
    Decompress(CodeArgs),
}

#[derive(Debug, clap::Args)]
pub struct CodeArgs {
    /// Input file.
    pub input: PathBuf,
    /// Output file.
    pub output: PathBuf,
    /// Model preset: a built-in name (default, paper) or a preset .toml file.
    #[arg(short, long, default_value = "default")]
    pub preset: String,
    /// Overwrite an existing output.
    #[arg(short, long)]
    pub force: bool,
}
