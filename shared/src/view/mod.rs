//! Pictures of workflows and runs: a layered layout of a definition, drawn as
//! inline SVG for the viewer's pages or as a Mermaid flowchart for docs, with one
//! execution's path marked; and the read-only viewer itself ([`Viewer`]).

pub mod layout;
pub mod mermaid;
pub mod pages;
pub mod site;
pub mod status;
pub mod svg;

pub use site::Viewer;
