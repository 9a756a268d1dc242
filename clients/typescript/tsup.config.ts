import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', react: 'src/react.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  external: ['react', 'ws'],
  // `require('@chat-gateway/client')` is the class itself, as the guide's
  // `module.exports = PipecatChatClient` was (the named exports ride along on it).
  footer: ({ format }) =>
    format === 'cjs' ? { js: 'if (module.exports.default) module.exports = Object.assign(module.exports.default, module.exports);' } : {},
});
