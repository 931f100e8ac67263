package chaos

import (
	"strings"
	"testing"
	"time"
)

// TestChecksCatchFaults proves the suite's checks: each scenario, made
// shorter, runs against the chaosfault build of the server (see
// cmd/postoffice/chaosfault.go) with one fault injected, and its checker
// must report that fault. A scenario that passed here would pass against
// a broken server too, and so prove nothing.
func TestChecksCatchFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault, scenario string
		run             func(t *testing.T, s *site, srv *server) []string
		want            string // what one of the reported problems says
		tmpfs           bool   // the scenario needs the maildrops on a small tmpfs
	}{
		{"ack-early", "crash during deliveries", func(t *testing.T, s *site, srv *server) []string {
			return crashDeliveries(t, s, srv, 100)
		}, "acknowledged (and not deleted) but is missing", false},
		{"delete-unmarked", "crash during QUIT", func(t *testing.T, s *site, srv *server) []string {
			return crashQuit(t, s, srv, 1, 300, 200)
		}, "acknowledged (and not deleted) but is missing", false},
		{"truncate-retr", "crash during RETR", crashRetr, "damaged or partial", false},
		{"uid-change", "crash during an index rewrite", func(t *testing.T, s *site, srv *server) []string {
			return crashIndex(t, s, srv, 1)
		}, "changed its unique id", false},
		{"ack-on-error", "disk full", diskFull, "the disk never filled", true},
		{"commit-ignores", "disk full", diskFull, "QUIT after retrievals on a full disk answered +OK", true},
		{"size-lie", "other programs", func(t *testing.T, s *site, srv *server) []string {
			return foreignPrograms(t, s, srv, 2*time.Second)
		}, "LIST announced", false},
		{"delete-unmarked", "soak", func(t *testing.T, s *site, srv *server) []string {
			return soak(t, s, srv, 8*time.Second)
		}, "acknowledged (and not deleted) but is missing", false},
		{"double-deliver", "soak", func(t *testing.T, s *site, srv *server) []string {
			return soak(t, s, srv, 8*time.Second)
		}, "is there twice", false},
	} {
		t.Run(tc.fault+"/"+strings.ReplaceAll(tc.scenario, " ", "-"), func(t *testing.T) {
			t.Parallel()
			s := newSite(t)
			if tc.tmpfs {
				mountTmpfs(t, s.mailRoot, "512k")
			}
			srv := startServer(t, s, serverOptions{fault: tc.fault})
			problems := tc.run(t, s, srv)
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					t.Logf("caught, as it must be: %s (%d problems in all)", p, len(problems))
					return
				}
			}
			t.Errorf("the %s check did not catch the fault %q: want a problem saying %q, got %d:\n%s",
				tc.scenario, tc.fault, tc.want, len(problems), strings.Join(problems, "\n"))
		})
	}
}
