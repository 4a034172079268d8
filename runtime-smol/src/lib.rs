//! Runs cpppo-core's engines on smol / async-io. The server, pipelined client and poller arrive with the engines they drive.
