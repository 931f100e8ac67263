package pop3server

import (
	"fmt"
	"runtime/debug"
)

// onFreshStack runs f on a goroutine of its own and waits for it. Opening
// a maildrop goes deep (directory listings, sorting, the file system
// root); on the session's goroutine it would leave a stack of several
// times what the read loop needs, held for the whole session, since Go
// shrinks a stack only at garbage collection and only by halves. An idle
// session then costs kilobytes less. A panic in f is raised again here,
// with f's stack, for the session's recovery to log.
func onFreshStack(f func()) {
	done := make(chan any, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Sprintf("%v\n%s", p, debug.Stack())
				return
			}
			done <- nil
		}()
		f()
	}()
	if p := <-done; p != nil {
		panic(p)
	}
}
