//! The subcommands beside the agent: `egressor classify`, `egressor prices`,
//! `egressor top` and `egressor rules`. They load the same
//! configuration and price sheet as the agent and call the same classifier and pricer, so
//! what they print is what the agent would count.

pub mod classify;
pub mod prices;
pub mod rules;
pub mod top;
