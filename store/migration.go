package store

// Migrated is one message as "postoffice migrate" copies it between
// stores (package migrate): everything that must survive the move.
//
// Unique ids are kept by keeping their parts: both postoffice stores make
// a message's id from its number in the maildrop (Seq) and the maildrop's
// UIDValidity, in Dovecot's default form (%08Xu%08Xv). A destination
// recreates the maildrop with the source's UIDValidity and gives each
// message its Seq, so that Info.UID comes out the same, and the next
// message delivered there continues after the source's counter.
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
