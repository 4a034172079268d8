//! Runs cpppo-core's engines over `std::net` sockets and threads. The server, pipelined client and poller arrive with the engines they drive.
