//! Runs cpppo-core's engines from one mio event loop serving many connections. The server, pipelined client and poller arrive with the engines they drive.
