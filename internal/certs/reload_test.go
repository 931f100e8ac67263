package certs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := WriteSelfSigned(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.interval = 0 // look at every call
	first := r.Certificate().Leaf.SerialNumber

	// A new pair, written in place.
	other := t.TempDir()
	newCert, newKey, err := WriteSelfSigned(other, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, newCert, certFile)
	// The certificate is new but the key is not yet: keep the old pair.
	if got := r.Certificate().Leaf.SerialNumber; got.Cmp(first) != 0 {
		t.Fatalf("serial %v after a half-written renewal, want the old %v", got, first)
	}
	copyFile(t, newKey, keyFile)
	second := r.Certificate().Leaf.SerialNumber
	if second.Cmp(first) == 0 {
		t.Fatal("renewed certificate not picked up")
	}
	want, err := LoadPair(newCert, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if second.Cmp(want.Leaf.SerialNumber) != 0 {
		t.Errorf("serial %v, want %v", second, want.Leaf.SerialNumber)
	}

	// Files that vanish keep the certificate in service.
	os.Remove(certFile)
	if got, _ := r.GetCertificate(nil); got.Leaf.SerialNumber.Cmp(second) != 0 {
		t.Errorf("serial %v with the file gone, want %v", got.Leaf.SerialNumber, second)
	}
}

func TestNewReloaderErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := WriteSelfSigned(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := WriteSelfSigned(t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM\n"), 0o600)
	for _, tc := range []struct{ name, cert, key string }{
		{"missing cert", filepath.Join(dir, "none.pem"), keyFile},
		{"missing key", certFile, filepath.Join(dir, "none.pem")},
		{"mismatched key", certFile, otherKey},
		{"garbage cert", garbage, keyFile},
	} {
		if _, err := NewReloader(tc.cert, tc.key, nil); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// copyFile replaces dst by src's content through a rename, as tools that
// renew certificates do.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}
