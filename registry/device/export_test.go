package device

// NextWait exposes nextWait to the external tests.
var NextWait = nextWait
