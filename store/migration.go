package store

// Migrated is one message as "postoffice migrate" copies it between
// stores (package migrate): everything that must survive the move.
//
// Unique ids are kept: both postoffice stores make a message's id from its
// number in the maildrop (Seq) and the maildrop's UIDValidity, in
// Dovecot's default form (%08Xu%08Xv), unless the message came with an id
// of its own (kept from another server, or from an X-UIDL header). A
// destination recreates the maildrop with the source's UIDValidity and
// gives each message its Seq, so that a generated Info.UID comes out the
// same, keeps any other Info.UID as it is, and continues numbering the
// next message delivered there after the source's counter.
//
// An importer from outside postoffice (an mbox, say) uses the same path:
// it picks a UIDValidity, numbers the messages in order (Seq 1, 2, …),
// and sets Info.UID to the id to keep (ValidUniqueID, unique in the
// maildrop) and Info.Received to the arrival time.
type Migrated struct {
	// Seq is the message's number in its maildrop (its "uid").
	Seq uint64
	// Info is its unique id, size, arrival and first retrieval.
	Info MessageInfo
	// MaildirInfo is the Maildir info part (after ':', "2,S" for a
	// message a mail client saw), or "" for a message in new/; kept so
	// that a migration back to Maildir restores the flags.
	MaildirInfo string
}

// ValidUniqueID reports whether id can be a POP3 unique id: RFC 1939 §7
// allows 1 to 70 characters in the range 0x21 to 0x7E.
func ValidUniqueID(id string) bool {
	if len(id) == 0 || len(id) > 70 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7E {
			return false
		}
	}
	return true
}
