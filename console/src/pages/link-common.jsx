// Pieces shared by the link pages: the link domains, the QR code, and the
// message a create or change leaves for the next page.
import { useState, useEffect } from 'preact/hooks';
import { get } from '../api.js';
import { ConfirmDialog } from '../ui.jsx';

let pendingFlash = null;
export function setFlash(message) {
  pendingFlash = message;
}
export function takeFlash() {
  const f = pendingFlash;
  pendingFlash = null;
  return f;
}

/** The hosts links may be created on; null while they are being read. */
export function useDomains() {
  const [hosts, setHosts] = useState(null);
  useEffect(() => {
    get('/console/domains').then(
      (d) => setHosts((d && d.hosts) || []),
      () => setHosts([]),
    );
  }, []);
  return hosts;
}

export function QrDialog({ link, onClose }) {
  return (
    <ConfirmDialog
      open={Boolean(link)}
      title={link ? `QR code of ${link.short_url}` : ''}
      confirm="Close"
      onConfirm={onClose}
      onCancel={onClose}
    >
      {link && <QrImage link={link} />}
    </ConfirmDialog>
  );
}

export function QrImage({ link, size = 220 }) {
  const src = `/api/v1/links/${encodeURIComponent(link.id)}/qr.svg`;
  return (
    <figure class="qr">
      <img src={src} width={size} height={size} alt={`QR code of ${link.short_url}`} />
      <figcaption>
        <a href={src} download={`${link.code.replace(/[^A-Za-z0-9._-]/g, '_')}.svg`}>
          Download SVG
        </a>
      </figcaption>
    </figure>
  );
}
