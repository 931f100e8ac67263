package migrate

import (
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/store"
)

// FuzzAssignIDs: whatever ids a source brings, every message gets a
// valid unique id of its own, a valid id that is the first of its kind is
// kept, and every other is a line of the report (renamed or not kept) or
// counted new.
func FuzzAssignIDs(f *testing.F) {
	f.Add("a\na\na-2\n\nb c\n000000010000ABCD")
	f.Add(strings.Repeat("x", 70) + "\n" + strings.Repeat("x", 70))
	f.Fuzz(func(t *testing.T, data string) {
		lines := strings.Split(data, "\n")
		own := make([]sourceID, len(lines))
		for i, id := range lines {
			own[i] = sourceID{id: id, label: "X-UIDL", num: i + 1}
		}
		var rep Report
		ids := assignIDs(own, 0xABCD, &rep)
		seen := map[string]bool{}
		kept := 0
		for i, id := range ids {
			if !store.ValidUniqueID(id) || seen[id] {
				t.Fatalf("message %d got %q (valid %v, repeated %v)", i+1, id, store.ValidUniqueID(id), seen[id])
			}
			seen[id] = true
			if id == lines[i] {
				kept++
			}
		}
		if kept != rep.Kept || rep.Kept+len(rep.Renamed)+len(rep.NotKept)+rep.New != len(lines) {
			t.Fatalf("report: kept %d (counted %d), renamed %d, not kept %d, new %d, of %d", rep.Kept, kept, len(rep.Renamed), len(rep.NotKept), rep.New, len(lines))
		}
	})
}
