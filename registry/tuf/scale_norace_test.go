//go:build !race

package tuf

const scaleTargets = 100_000
