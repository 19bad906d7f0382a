// Jest's module loader cannot require() an ES module before Node 24.9, and @fastify/static
// (under @fastify/swagger-ui and @bull-board/fastify) require()s content-disposition 3, which
// ships only as ESM. It uses it for reply.download alone, which no route of ours calls; this
// stands in for it under Jest only and fails loudly if that ever changes.
'use strict';

exports.create = function create() {
  throw new Error('content-disposition is not loadable under Jest (ESM-only); see jest.config.js');
};
exports.parse = function parse() {
  throw new Error('content-disposition is not loadable under Jest (ESM-only); see jest.config.js');
};
