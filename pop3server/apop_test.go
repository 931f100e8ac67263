package pop3server

import (
	"crypto/md5"
	"encoding/hex"
)

func apopDigest(stamp, secret string) string {
	sum := md5.Sum([]byte(stamp + secret))
	return hex.EncodeToString(sum[:])
}
