//! The daemon: claims tasks and drives the pipeline until shut down.
