package pop3

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line    string
		want    Command
		wantErr error
	}{
		{"STAT", Command{Name: "STAT"}, nil},
		{"stat", Command{Name: "STAT"}, nil},
		{"List 1", Command{Name: "LIST", Args: []string{"1"}, Rest: "1"}, nil},
		{"TOP 1 10", Command{Name: "TOP", Args: []string{"1", "10"}, Rest: "1 10"}, nil},
		{"PASS secret with spaces", Command{Name: "PASS", Args: []string{"secret", "with", "spaces"}, Rest: "secret with spaces"}, nil},
		{"PASS  leading", Command{Name: "PASS", Args: []string{"leading"}, Rest: " leading"}, nil},
		{"", Command{}, ErrEmptyCommand},
		{" STAT", Command{}, ErrBadKeyword},
		{"ST\x00T", Command{}, ErrBadArgument},
		{"USER a\x1bb", Command{}, ErrBadArgument},
		{"RETR\x7f", Command{}, ErrBadArgument},
		{"ÄÖÜ", Command{}, ErrBadKeyword},
		{"ABCDEFGHIJKLMNOPQ", Command{}, ErrBadKeyword},
		{"X-CMD arg", Command{Name: "X-CMD", Args: []string{"arg"}, Rest: "arg"}, nil},
	}
	for _, tt := range tests {
		got, err := ParseCommand([]byte(tt.line))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseCommand(%q) error = %v, want %v", tt.line, err, tt.wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCommand(%q) = %#v, want %#v", tt.line, got, tt.want)
		}
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 300)
	in := "STAT\r\nLIST\n" + long + "\r\nNOOP\r\n" + strings.Repeat("y", 5000) + "\r\nQUIT\r\npartial"
	r := bufio.NewReaderSize(strings.NewReader(in), 1024)
	want := []struct {
		line string
		err  error
	}{
		{"STAT", nil}, {"LIST", nil}, {"", ErrLineTooLong}, {"NOOP", nil},
		{"", ErrLineTooLong}, {"QUIT", nil}, {"", io.EOF},
	}
	for i, w := range want {
		line, err := ReadLine(r, 255)
		if !errors.Is(err, w.err) || string(line) != w.line {
			t.Fatalf("line %d: got %q, %v; want %q, %v", i, line, err, w.line, w.err)
		}
	}
}

func TestReadLineExactLimit(t *testing.T) {
	ok := strings.Repeat("a", 253) + "\r\n" // 255 octets with CRLF
	r := bufio.NewReaderSize(strings.NewReader(ok+"b"+ok), 4096)
	if line, err := ReadLine(r, 255); err != nil || len(line) != 253 {
		t.Fatalf("255-octet line: %d octets, %v", len(line), err)
	}
	if _, err := ReadLine(r, 255); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("256-octet line: err = %v, want ErrLineTooLong", err)
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		line string
		want Reply
		ok   bool
	}{
		{"+OK", Reply{OK: true}, true},
		{"+OK 2 320", Reply{OK: true, Text: "2 320"}, true},
		{"-ERR [IN-USE] locked", Reply{Code: "IN-USE", Text: "locked"}, true},
		{"-ERR [SYS/TEMP] later", Reply{Code: "SYS/TEMP", Text: "later"}, true},
		{"-ERR no such message", Reply{Text: "no such message"}, true},
		{"-ERR [] x", Reply{Text: "[] x"}, true},
		{"+OKAY", Reply{}, false},
		{"* hello", Reply{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseReply(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestErrorString(t *testing.T) {
	if got := ErrCode(CodeInUse, "locked").Error(); got != "-ERR [IN-USE] locked" {
		t.Errorf("got %q", got)
	}
	if got := Err("nope").Error(); got != "-ERR nope" {
		t.Errorf("got %q", got)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"STAT", "LIST 1", "TOP 1 99999999", "PASS a b c", "\x00", "USER ../../etc"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := ParseCommand(line)
		if err != nil {
			return
		}
		if cmd.Name == "" || cmd.Name != strings.ToUpper(cmd.Name) {
			t.Fatalf("bad name %q", cmd.Name)
		}
		for _, a := range cmd.Args {
			if a == "" || strings.ContainsAny(a, " \r\n\x00") {
				t.Fatalf("bad argument %q", a)
			}
		}
	})
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte("STAT\r\nLIST 1\r\n"), 255)
	f.Add([]byte(strings.Repeat("x", 600)+"\nQUIT\r\n"), 255)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		max = 16 + abs(max)%1024
		// A small buffer, so that lines longer than it are exercised too.
		r := bufio.NewReaderSize(strings.NewReader(string(in)), 16+len(in)%64)
		for i := 0; i <= len(in); i++ {
			line, err := ReadLine(r, max)
			if err == io.EOF {
				return
			}
			if err != nil && !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(line)+1 > max {
				t.Fatalf("line of %d octets passed limit %d", len(line), max)
			}
		}
		t.Fatal("ReadLine did not reach EOF")
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // math.MinInt
			return 0
		}
		return -n
	}
	return n
}

// Lines longer than the reader's buffer are gathered up to the limit.
func TestReadLineLongerThanBuffer(t *testing.T) {
	token := strings.Repeat("t", 50000)
	in := "AUTH XOAUTH2 " + token + "\r\n" + strings.Repeat("u", 70000) + "\r\nNOOP\r\n"
	r := bufio.NewReaderSize(strings.NewReader(in), 4096)
	line, err := ReadLine(r, 64*1024)
	if err != nil || string(line) != "AUTH XOAUTH2 "+token {
		t.Fatalf("long line: %d octets, %v", len(line), err)
	}
	if _, err := ReadLine(r, 64*1024); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("over the limit: %v", err)
	}
	if line, err := ReadLine(r, 64*1024); err != nil || string(line) != "NOOP" {
		t.Fatalf("after a long line: %q, %v", line, err)
	}
}
