// Package envelope implements the taxlink notification format: a canonical,
// signed header that carries no personal data, and a payload sealed end to
// end to the recipient's public key with HPKE (RFC 9180) in authenticated
// chunks so that it can be streamed through the hub without being buffered.
//
// The byte-level format is specified in docs/format.md at the module root;
// testdata/vectors.json holds test vectors for a second implementation.
//
// Typical sender flow:
//
//	h := &envelope.Header{ID: ..., Type: ..., Sender: ..., Recipient: ...,
//		Created: ..., ContentType: ..., KeyID: ...}
//	var ct bytes.Buffer // or a temporary file
//	err := envelope.Seal(recipientKey, h, plaintext, &ct)
//	hb, err := h.MarshalBinary()
//	sig, err := envelope.Sign(senderKey, hb)
//	err = envelope.WritePreamble(w, hb, sig) // then copy ct to w
//
// Typical receiver flow:
//
//	h, hb, sig, err := envelope.ReadPreamble(r)
//	err = envelope.Verify(senderPublicKey(h.Sender), hb, sig)
//	pt, err := envelope.Open(sealingKey, h, r)
//	// read pt to io.EOF; any other error means the whole payload is void.
//
// Every parser in this package is strict: fixed limits, exact lengths, no
// trailing bytes, and anything that parses re-encodes to identical bytes.
// Errors wrap one of the exported sentinels and name the offending field;
// they never contain payload bytes.
package envelope
