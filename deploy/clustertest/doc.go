// Package clustertest runs afterlife scaled out on one machine and breaks
// it while it works: PostgreSQL, MinIO, two `afterlife serve` replicas
// behind a small round-robin load balancer, and three `afterlife builder`
// processes. The whole story (vendor deposit, release policy, recipe,
// reproducible build, publish, device update) goes through the load
// balancer with the real CLI while replicas, a builder, PostgreSQL and
// MinIO are killed or stopped under it. A second test runs the replicas
// behind a real nginx configured from deploy/compose/nginx.conf (only
// addresses and log paths changed) while devices poll: MinIO stopped for
// 5 s and a rolling restart of both replicas must fail no update check,
// take no replica out of nginx's rotation, and each replica must stop
// within 3 s; a replica shedding update checks must reach devices as 503
// with Retry-After, not as nginx's 502. It holds only tests; it must not
// reach into any part's tables or packages beyond their public HTTP API.
package clustertest
