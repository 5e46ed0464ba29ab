import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { CONTEXT_FRAME_FLAG, contextFrameInUse, optionsWithContextFrame } from '../../src/context-frame.js';

describe('AsyncContextFrame', () => {
  it('is turned on for Node 22 and 23, keeping the other options', () => {
    expect(optionsWithContextFrame({ version: 'v22.23.5', execArgv: ['--import', 'tsx'] })).toEqual([CONTEXT_FRAME_FLAG, '--import', 'tsx']);
    expect(optionsWithContextFrame({ version: 'v23.1.0', execArgv: [] })).toEqual([CONTEXT_FRAME_FLAG]);
  });

  it('is not asked for twice, whether given on the command line or in NODE_OPTIONS', () => {
    expect(optionsWithContextFrame({ version: 'v22.23.5', execArgv: [CONTEXT_FRAME_FLAG] })).toBeUndefined();
    expect(optionsWithContextFrame({ version: 'v22.23.5', execArgv: [], nodeOptions: `--max-old-space-size=512 ${CONTEXT_FRAME_FLAG}` })).toBeUndefined();
    expect(contextFrameInUse({ version: 'v22.23.5', execArgv: [], nodeOptions: CONTEXT_FRAME_FLAG })).toBe(true);
  });

  it('is left to Node 24 and later, where it is the default (and the flag may not exist)', () => {
    expect(optionsWithContextFrame({ version: 'v24.3.0', execArgv: [] })).toBeUndefined();
    expect(contextFrameInUse({ version: 'v24.3.0', execArgv: [] })).toBe(true);
    expect(contextFrameInUse({ version: 'v24.3.0', execArgv: ['--no-async-context-frame'] })).toBe(false);
  });

  it('reports off on Node 22 without the flag', () => {
    expect(contextFrameInUse({ version: 'v22.23.5', execArgv: ['--import', 'tsx'] })).toBe(false);
  });
});

describe('the production entry', () => {
  it('is the same for the Docker image as for npm start, so the image gets AsyncContextFrame too', () => {
    const start = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } }).scripts.start;
    const cmd = /^CMD (\[.*\])$/m.exec(readFileSync('Dockerfile', 'utf8'))?.[1];
    expect(start).toBe('node dist/src/start.js');
    expect(JSON.parse(cmd ?? 'null')).toEqual(start.split(' '));
  });
});
