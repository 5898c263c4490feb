package daemon

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"

	"taxlink/internal/config"
	"taxlink/internal/keystore"
	"taxlink/internal/pki"
)

// keyEnv says where the secrets of a configuration's key references come
// from.
func keyEnv(k config.KeySources) keystore.Env {
	env := keystore.DefaultEnv()
	if k.PassphraseFile != "" {
		env.Passphrase = keystore.PassphraseFromFile(k.PassphraseFile)
	}
	env.Token.Module = k.PKCS11Module
	if k.PINFile != "" {
		env.PIN = keystore.PassphraseFromFile(k.PINFile)
	}
	return env
}

func loadSigner(ref string, env keystore.Env) (crypto.Signer, io.Closer, error) {
	r, err := keystore.ParseRef(ref)
	if err != nil {
		return nil, nil, err
	}
	return keystore.LoadSigner(r, env)
}

// loadTLS returns the certificate chain at certPath with the private key
// that keyRef names, checking that they belong together.
func loadTLS(certPath, keyRef string, env keystore.Env) (tls.Certificate, io.Closer, error) {
	certs, err := pki.ReadCertFile(certPath)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	s, closer, err := loadSigner(keyRef, env)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pub, ok := certs[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(s.Public()) {
		closer.Close()
		return tls.Certificate{}, nil, errors.New("the key does not match the certificate")
	}
	c := tls.Certificate{PrivateKey: s, Leaf: certs[0]}
	for _, x := range certs {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, closer, nil
}

// loadMatchingSigner loads the key ref names and checks that its public key
// is want, the key the directory publishes for this process.
func loadMatchingSigner(ref string, env keystore.Env, want *ecdsa.PublicKey) (crypto.Signer, io.Closer, error) {
	s, closer, err := loadSigner(ref, env)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok || !pub.Equal(want) {
		closer.Close()
		return nil, nil, fmt.Errorf("the key does not match the signing key the directory publishes for this participant")
	}
	return s, closer, nil
}
