// Package deploy holds how afterlife runs for real: the container image
// (Containerfile), systemd units, a compose file and Kubernetes manifests,
// each with a README. It has no Go code of its own; its test checks that the
// manifests agree with each other and with the afterlife binary's flags. It
// must not hold secrets: every credential in it is a marked placeholder.
package deploy
