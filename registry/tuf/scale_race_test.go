//go:build race

package tuf

const scaleTargets = 20_000
