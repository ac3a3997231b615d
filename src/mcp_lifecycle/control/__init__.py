"""The CLI's side of another process: start it (spawn, await READY), stop it (verify, signal,
escalate), reload it, and inspect it (its state, health and whereabouts)."""
