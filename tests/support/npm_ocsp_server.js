// The `ocsp` package's responder (ocsp.Server, from the npm registry) on
// 127.0.0.1, as a peer for tests: it signs with the issuing CA's RSA key,
// accepts only POST, and answers a GET by never finishing the response.
//
//   node npm_ocsp_server.js CA.pem CA.key PORT SERIAL_HEX:good|revoked...
//
// NODE_PATH must name the node_modules folder the package was installed
// into.  Prints "listening on 127.0.0.1:PORT" once it accepts connections.
'use strict';
const fs = require('fs');
const ocsp = require('ocsp');

const [caFile, keyFile, port, ...certs] = process.argv.slice(2);
const server = ocsp.Server.create({
  cert: fs.readFileSync(caFile),
  key: fs.readFileSync(keyFile),
});
for (const c of certs) {
  const [serial, status] = c.split(':');
  if (status === 'revoked')
    server.addCert(serial.toLowerCase(), 'revoked', {
      revocationTime: new Date(Date.now() - 3600e3),
      revocationReason: 'keyCompromise',
    });
  else
    server.addCert(serial.toLowerCase(), 'good');
}
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${port}`);
});
