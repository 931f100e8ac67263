package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// poplibResult is what testdata/poplib_session.py reports.
type poplibResult struct {
	Greeting   string   `json:"greeting"`
	CapaBefore []string `json:"capa_before"`
	CapaTLS    []string `json:"capa_tls"`
	Login      string   `json:"login"`
	Stat       []int    `json:"stat"`
	List       []string `json:"list"`
	UIDL       []string `json:"uidl"`
	UIDL1      string   `json:"uidl_1"`
	RetrOctets []int    `json:"retr_octets"`
	Top        []string `json:"top"`
	StatAfter  []int    `json:"stat_after_dele"`
	Quit       string   `json:"quit"`
	outdir     string
}

// poplibSpec is the session testdata/poplib_session.py runs.
type poplibSpec struct {
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	Mode     string   `json:"mode"` // plain, stls, ssl
	CAFile   string   `json:"cafile"`
	User     string   `json:"user"`
	Password string   `json:"password"`
	APOP     bool     `json:"apop"`
	OutDir   string   `json:"outdir"`
	Top      [][2]int `json:"top"`
	Dele     []int    `json:"dele"`
}

// runPoplib runs one session and decodes its report.
func runPoplib(t *testing.T, python string, spec poplibSpec) poplibResult {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "poplib_session.py"))
	if err != nil {
		t.Fatal(err)
	}
	spec.OutDir = t.TempDir()
	arg, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, command{}, python, script, string(arg))
	if r.exitCode != 0 {
		t.Fatalf("poplib session %s: %s", arg, r.output())
	}
	var res poplibResult
	if err := json.Unmarshal(r.stdout, &res); err != nil {
		t.Fatalf("poplib report: %v\n%s", err, r.output())
	}
	res.outdir = spec.OutDir
	return res
}

// spec fills in the connection part of a session for one transport.
func poplibConnect(srv *server, mode string) poplibSpec {
	addr := srv.plain
	if mode == "ssl" {
		addr = srv.tls
	}
	_, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	return poplibSpec{Host: "127.0.0.1", Port: p, Mode: mode, CAFile: srv.caFile}
}

// TestPoplib runs a whole session with Python's poplib: USER/PASS, STAT,
// LIST, UIDL, RETR of every message, TOP, DELE and QUIT, over plain POP3,
// STLS (POP3.stls) and implicit TLS (POP3_SSL), then checks the maildrop
// and a second session's unique ids.
func TestPoplib(t *testing.T) {
	python := need(t, "python3")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, mode := range []string{"plain", "stls", "ssl"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				site := newSite(t)
				site.deliverAll(alice)
				srv := launch(t, site, options{})

				spec := poplibConnect(srv, mode)
				spec.User, spec.Password = alice, alicePassword
				spec.Top = [][2]int{{1, 0}, {2, 3}, {6, 99999999}}
				spec.Dele = []int{1}
				res := runPoplib(t, python, spec)

				if mode == "stls" {
					if !slices.Contains(res.CapaBefore, "STLS") {
						t.Errorf("CAPA before TLS lacks STLS: %q", res.CapaBefore)
					}
					if slices.Contains(res.CapaTLS, "STLS") {
						t.Errorf("CAPA after STLS still offers STLS: %q", res.CapaTLS)
					}
				}
				checkPoplibSession(t, res, testMessages)
				if want := []int{len(testMessages) - 1, totalSize(testMessages[1:])}; !slices.Equal(res.StatAfter, want) {
					t.Errorf("STAT after DELE 1 = %v, want %v", res.StatAfter, want)
				}
				wantSame(t, "TOP 1 0", testMessages[0].top(0), readFile(t, res.outdir, "top-1-0.eml"))
				wantSame(t, "TOP 2 3", testMessages[1].top(3), readFile(t, res.outdir, "top-2-3.eml"))
				wantSame(t, "TOP 6 99999999", testMessages[5].wire(), readFile(t, res.outdir, "top-6-99999999.eml"))
				site.wantMaildrop(alice, testMessages[1:]...)

				// A second session sees the rest with the same unique ids.
				spec.Top, spec.Dele = nil, nil
				again := runPoplib(t, python, spec)
				checkPoplibSession(t, again, testMessages[1:])
				if !slices.Equal(uidsOf(again.UIDL), uidsOf(res.UIDL)[1:]) {
					t.Errorf("unique ids changed between sessions: %q, then %q", res.UIDL, again.UIDL)
				}
				srv.wantTLSSessions(t, mode != "plain")
			})
		}
	})
}

// TestPoplibAPOP logs in with poplib's apop() as a user whose passwd-file
// entry keeps a {PLAIN} secret.
func TestPoplibAPOP(t *testing.T) {
	python := need(t, "python3")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, mode := range []string{"plain", "stls", "ssl"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				site := newSite(t)
				site.deliverAll(carol)
				srv := launch(t, site, options{apop: true})
				spec := poplibConnect(srv, mode)
				spec.User, spec.Password, spec.APOP = carol, carolPassword, true
				spec.Dele = []int{2, 4}
				res := runPoplib(t, python, spec)
				if !strings.Contains(res.Greeting, "<") || !strings.Contains(res.Greeting, "@") {
					t.Errorf("greeting %q has no APOP timestamp", res.Greeting)
				}
				checkPoplibSession(t, res, testMessages)
				site.wantMaildrop(carol, testMessages[0], testMessages[2], testMessages[4], testMessages[5])
				site.wantMaildrop(alice) // untouched, empty
			})
		}
	})
}

// checkPoplibSession checks STAT, LIST, UIDL and the retrieved messages of
// a session over a maildrop holding msgs.
func checkPoplibSession(t *testing.T, res poplibResult, msgs []message) {
	t.Helper()
	if want := []int{len(msgs), totalSize(msgs)}; !slices.Equal(res.Stat, want) {
		t.Errorf("STAT = %v, want %v", res.Stat, want)
	}
	var list []string
	for i, m := range msgs {
		list = append(list, fmt.Sprintf("%d %d", i+1, m.size()))
	}
	if !slices.Equal(res.List, list) {
		t.Errorf("LIST = %q, want %q", res.List, list)
	}
	uidl := strings.Join(res.UIDL, "\r\n") + "\r\n"
	uids := parseUIDL(t, []byte(uidl), len(msgs))
	if want := "+OK 1 " + uids[0]; res.UIDL1 != want {
		t.Errorf("UIDL 1 = %q, want %q", res.UIDL1, want)
	}
	for i, m := range msgs {
		wantSame(t, "RETR "+m.name, m.wire(), readFile(t, res.outdir, fmt.Sprintf("%d.eml", i+1)))
	}
	if !strings.HasPrefix(res.Quit, "+OK") {
		t.Errorf("QUIT: %q", res.Quit)
	}
}

func totalSize(msgs []message) int {
	n := 0
	for _, m := range msgs {
		n += m.size()
	}
	return n
}

// uidsOf returns the unique ids of "n uid" lines.
func uidsOf(lines []string) []string {
	var out []string
	for _, l := range lines {
		_, uid, _ := strings.Cut(l, " ")
		out = append(out, uid)
	}
	return out
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
