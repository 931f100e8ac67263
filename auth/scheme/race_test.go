//go:build race

package scheme

// raceEnabled reports whether the race detector is on. It slows pure
// computation such as key stretching tenfold and finds nothing in it, so
// the slowest known-answer tests are left to the normal run.
const raceEnabled = true
