"""What a server keeps on disk and how it is proven: the cache root and its private files, the PID
file and lock, process identity, the health snapshot, the name socket, the server's log."""
