// nginx njs: the verified-or-not TLS client certificate as an RFC 9440 Client-Cert value
// (a Structured Field byte sequence of the DER certificate, ":base64:"), or "" when the
// client sent none (an empty proxy_set_header value removes the header, so a client can
// never smuggle its own Client-Cert through). See docs/deployment.md, "Mutual TLS".
function header(r) {
    var pem = r.variables.ssl_client_raw_cert;
    if (!pem) {
        return '';
    }
    var base64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
    return ':' + base64 + ':';
}

export default { header };
