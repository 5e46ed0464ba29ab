import password from '@inquirer/password';

/** The password from --password-stdin, or asked for (twice, hidden) on a terminal. */
export async function readPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  if (!process.stdin.isTTY) {
    throw new Error('no terminal to ask for the password: pass it with --password-stdin');
  }
  const first = await password({ message: 'Password:', mask: '*' });
  const again = await password({ message: 'Password (again):', mask: '*' });
  if (first !== again) throw new Error('the passwords do not match');
  return first;
}
