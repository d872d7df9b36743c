// Package clustertest runs afterlife scaled out on one machine and breaks
// it while it works: PostgreSQL, MinIO, two `afterlife serve` replicas
// behind a small round-robin load balancer, and three `afterlife builder`
// processes. The whole story (vendor deposit, release policy, recipe,
// reproducible build, publish, device update) goes through the load
// balancer with the real CLI while replicas, a builder, PostgreSQL and
// MinIO are killed or stopped under it. It holds only tests; it must not
// reach into any part's tables or packages beyond their public HTTP API.
package clustertest
