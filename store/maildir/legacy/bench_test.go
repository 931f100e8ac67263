package legacy

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// BenchmarkReadDovecot100k measures working out the ids of a maildrop of
// 100,000 messages from its dovecot-uidlist: the extra cost of the first
// login after the switch (later logins never read the file again).
func BenchmarkReadDovecot100k(b *testing.B) {
	var list strings.Builder
	list.WriteString("3 V1690000000 N100001 G00112233445566778899aabbccddeeff\n")
	bases := make([]string, 100_000)
	for i := range bases {
		bases[i] = fmt.Sprintf("%d.M%dP1Q%d.mx,S=4711,W=4800", 1600000000+i/10, i%10, i)
		fmt.Fprintf(&list, "%d W4800 :%s:2,S\n", i+1, bases[i])
	}
	fsys := fstest.MapFS{DovecotUIDList: {Data: []byte(list.String())}}
	b.SetBytes(int64(list.Len()))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Read(fsys, Config{Source: Dovecot}, bases, nil)
		if err != nil || len(res.Messages) != len(bases) {
			b.Fatal(err)
		}
	}
}
