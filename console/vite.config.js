// Build of the gateway's web console (docs/console.md).
//
// The output in dist/ is checked in and embedded in the gateway binary, and
// CI rebuilds it and compares (`npm ci && npm run build && git diff
// --exit-code console/dist`), so the build must be byte-for-byte
// reproducible: fixed file names (no content hashes), one JS file, one CSS
// file, no source maps, no build time or path in the output.
import { defineConfig } from 'vite';

export default defineConfig({
  // Relative asset URLs: the same files are served at /console/ on the admin
  // listener and on the API listener.
  base: './',
  // JSX for Preact, with no plugin: the automatic runtime of preact/jsx-runtime.
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: '',
    sourcemap: false,
    modulePreload: false,
    target: 'es2020',
    cssCodeSplit: false,
    reportCompressedSize: false,
    rolldownOptions: {
      output: {
        entryFileNames: 'console.js',
        chunkFileNames: 'console-[name].js',
        assetFileNames: (asset) =>
          (asset.names || []).some((n) => n.endsWith('.css')) ? 'console.css' : '[name][extname]',
        codeSplitting: false,
      },
    },
  },
});
