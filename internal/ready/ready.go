// Package ready tells when a POP3 server started by a test (the real
// binary, in another process) is serving: its tests and the chaos suite
// start, kill and restart servers many times, and each start waits here.
package ready

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// WaitGreeting waits until the server at addr sends a +OK greeting, the
// process exits (a value on exited), or 20 seconds pass. It ends the
// session it opened with QUIT, so the server's log shows no error.
func WaitGreeting(addr string, exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(nc)
			line, rerr := r.ReadString('\n')
			if rerr == nil && strings.HasPrefix(line, "+OK") {
				fmt.Fprintf(nc, "QUIT\r\n")
				_, rerr = r.ReadString('\n')
				nc.Close()
				return rerr
			}
			nc.Close()
			err = fmt.Errorf("greeting %q: %v", line, rerr)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
