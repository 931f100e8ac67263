package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
)

// algorithm is a JWS signature algorithm this package verifies (RFC 7518
// §3, RFC 8037 §3.1).
type algorithm struct {
	name  string
	hash  crypto.Hash // 0 for EdDSA, which hashes internally
	check func(key crypto.PublicKey, alg *algorithm, digest, input, sig []byte) bool
	curve elliptic.Curve // for ES*
}

// algorithms maps the accepted "alg" values to their verifiers. Absent on
// purpose: "none" (no signature) and HS256/384/512 (a shared secret, which
// a public key set must not hold; accepting it invites RSA public keys
// being used as HMAC secrets).
var algorithms = map[string]*algorithm{
	"RS256": {name: "RS256", hash: crypto.SHA256, check: verifyPKCS1},
	"RS384": {name: "RS384", hash: crypto.SHA384, check: verifyPKCS1},
	"RS512": {name: "RS512", hash: crypto.SHA512, check: verifyPKCS1},
	"PS256": {name: "PS256", hash: crypto.SHA256, check: verifyPSS},
	"PS384": {name: "PS384", hash: crypto.SHA384, check: verifyPSS},
	"PS512": {name: "PS512", hash: crypto.SHA512, check: verifyPSS},
	"ES256": {name: "ES256", hash: crypto.SHA256, check: verifyECDSA, curve: elliptic.P256()},
	"ES384": {name: "ES384", hash: crypto.SHA384, check: verifyECDSA, curve: elliptic.P384()},
	"EdDSA": {name: "EdDSA", check: verifyEd25519},
}

// suits reports whether key is of the type (and curve) alg needs, so that
// a key is never used with an algorithm it was not made for.
func (alg *algorithm) suits(key crypto.PublicKey) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg.name[0] == 'R' || alg.name[0] == 'P'
	case *ecdsa.PublicKey:
		return alg.curve != nil && k.Curve == alg.curve
	case ed25519.PublicKey:
		return alg.name == "EdDSA"
	}
	return false
}

// verify checks sig over input with key.
func (alg *algorithm) verify(key crypto.PublicKey, input, sig []byte) bool {
	if !alg.suits(key) {
		return false
	}
	var digest []byte
	switch alg.hash {
	case crypto.SHA256:
		d := sha256.Sum256(input)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(input)
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512(input)
		digest = d[:]
	}
	return alg.check(key, alg, digest, input, sig)
}

func verifyPKCS1(key crypto.PublicKey, alg *algorithm, digest, _, sig []byte) bool {
	return rsa.VerifyPKCS1v15(key.(*rsa.PublicKey), alg.hash, digest, sig) == nil
}

// verifyPSS follows RFC 7518 §3.5: MGF1 with the same hash, and a salt
// as long as the hash.
func verifyPSS(key crypto.PublicKey, alg *algorithm, digest, _, sig []byte) bool {
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.hash}
	return rsa.VerifyPSS(key.(*rsa.PublicKey), alg.hash, digest, sig, opts) == nil
}

// verifyECDSA follows RFC 7518 §3.4: the signature is R and S, each as
// long as the curve's order, concatenated (not ASN.1).
func verifyECDSA(key crypto.PublicKey, alg *algorithm, digest, _, sig []byte) bool {
	size := (alg.curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(key.(*ecdsa.PublicKey), digest, r, s)
}

func verifyEd25519(key crypto.PublicKey, _ *algorithm, _, input, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(key.(ed25519.PublicKey), input, sig)
}

// jwt is a parsed, not yet verified, JWS compact serialization (RFC 7515
// §7.1) of a JWT.
type jwt struct {
	alg          *algorithm
	keyID        string
	claims       *claims
	signingInput []byte // BASE64URL(header) "." BASE64URL(payload)
	signature    []byte
}

// parseJWT splits and decodes a token. It refuses what this package will
// not verify, before any key is looked at: algorithms outside the list,
// critical extensions, and types that are not access tokens.
func parseJWT(token string) (*jwt, error) {
	headerPart, rest, ok1 := strings.Cut(token, ".")
	payloadPart, sigPart, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sigPart, ".") {
		// Five parts would be JWE, which access tokens are not.
		return nil, invalidToken("not a JWS compact serialization")
	}
	headerJSON, err := decodeSegment(headerPart)
	if err != nil {
		return nil, invalidToken("header: %v", err)
	}
	var header struct {
		Alg  string          `json:"alg"`
		Kid  *string         `json:"kid"`
		Typ  string          `json:"typ"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return nil, invalidToken("header is not a JSON object of the JWS header parameters")
	}
	alg, ok := algorithms[header.Alg]
	switch {
	case header.Alg == "none":
		return nil, invalidToken(`algorithm "none" refused`)
	case strings.HasPrefix(header.Alg, "HS"):
		return nil, invalidToken("HMAC algorithm %q refused", header.Alg)
	case !ok:
		return nil, invalidToken("algorithm %q not supported", header.Alg)
	case header.Crit != nil:
		// RFC 7515 §4.1.11: extensions listed in crit must be understood;
		// this package understands none.
		return nil, invalidToken("critical header extensions not supported")
	}
	// RFC 9068 §2.1 access tokens are typed "at+jwt"; many authorization
	// servers still write "JWT" or nothing. Other types (ID tokens of
	// some servers, logout tokens, DPoP proofs) are not access tokens.
	switch strings.ToLower(header.Typ) {
	case "", "jwt", "at+jwt", "application/at+jwt":
	default:
		return nil, invalidToken("token type %q is not an access token", header.Typ)
	}
	payload, err := decodeSegment(payloadPart)
	if err != nil {
		return nil, invalidToken("payload: %v", err)
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, invalidToken("%v", err)
	}
	sig, err := decodeSegment(sigPart)
	if err != nil {
		return nil, invalidToken("signature: %v", err)
	}
	t := &jwt{
		alg:          alg,
		claims:       c,
		signingInput: []byte(token[:len(headerPart)+1+len(payloadPart)]),
		signature:    sig,
	}
	if header.Kid != nil {
		t.keyID = *header.Kid
	}
	return t, nil
}

// decodeSegment decodes unpadded base64url (RFC 7515 §2).
func decodeSegment(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not unpadded base64url")
	}
	return b, nil
}
