package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The unit files in contrib/systemd agree with the server: the sockets
// carry the names it takes, the service passes them and waits for
// READY=1; and systemd itself finds nothing wrong with them.
func TestSystemdUnits(t *testing.T) {
	dir := "../../contrib/systemd"
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit files in %s: %v", dir, err)
	}
	settings := func(path string) map[string][]string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				out[k] = append(out[k], v)
			}
		}
		return out
	}
	service := settings(filepath.Join(dir, "postoffice.service"))
	if !slices.Equal(service["Type"], []string{"notify"}) || !slices.Contains(service["NoNewPrivileges"], "yes") ||
		!slices.Equal(service["CapabilityBoundingSet"], []string{""}) || !slices.Equal(service["ProtectSystem"], []string{"strict"}) {
		t.Errorf("postoffice.service: Type %q, NoNewPrivileges %q, CapabilityBoundingSet %q, ProtectSystem %q",
			service["Type"], service["NoNewPrivileges"], service["CapabilityBoundingSet"], service["ProtectSystem"])
	}
	for _, sock := range strings.Fields(strings.Join(service["Sockets"], " ")) {
		if _, err := os.Stat(filepath.Join(dir, sock)); err != nil {
			t.Errorf("postoffice.service passes %s: %v", sock, err)
		}
	}
	names := map[string]bool{}
	for _, f := range files {
		if !strings.HasSuffix(f, ".socket") {
			continue
		}
		s := settings(f)
		name := strings.Join(s["FileDescriptorName"], "")
		if name != socketPOP3 && name != socketPOP3S && name != socketLMTP {
			t.Errorf("%s: FileDescriptorName %q is not a name the server takes", f, name)
		}
		names[name] = true
		if !slices.Equal(s["Service"], []string{"postoffice.service"}) {
			t.Errorf("%s: Service %q", f, s["Service"])
		}
	}
	if len(names) != 3 {
		t.Errorf("sockets for %v, want pop3, pop3s and lmtp", names)
	}

	verify, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("POSTOFFICE_INTEROP") == "1" {
			t.Fatal("systemd-analyze is not installed (Debian package systemd)")
		}
		t.Skip("systemd-analyze is not installed")
	}
	// systemd-analyze wants ExecStart's program to exist.
	tmp := t.TempDir()
	var args []string
	for _, f := range files {
		data, _ := os.ReadFile(f)
		data = []byte(strings.ReplaceAll(string(data), "/usr/local/bin/postoffice", "/bin/true"))
		dst := filepath.Join(tmp, filepath.Base(f))
		os.WriteFile(dst, data, 0o644)
		args = append(args, dst)
	}
	out, err := exec.Command(verify, append([]string{"verify", "--man=no"}, args...)...).CombinedOutput()
	if err != nil || strings.Contains(string(out), tmp) {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
