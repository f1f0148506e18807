/** TinyStories-like text written by the tests: short stories from templates, reproducible by seed. */
import { rng } from '../reference/kdReference';

export function storiesText(count: number, seed = 7): string[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const names = ['Lily', 'Tom', 'Sue', 'Ben', 'Mia', 'Max', 'Anna', 'Sam'];
  const animals = ['dog', 'cat', 'bird', 'bunny', 'frog', 'duck'];
  const things = ['ball', 'kite', 'toy car', 'red hat', 'big box', 'little boat'];
  const places = ['park', 'garden', 'forest', 'beach', 'house', 'school'];
  const feelings = ['happy', 'sad', 'scared', 'excited', 'tired', 'proud'];
  return Array.from({ length: count }, () => {
    const [n, m, an, t, p] = [pick(names), pick(names), pick(animals), pick(things), pick(places)];
    return `Once upon a time, there was a little ${pick(['girl', 'boy'])} named ${n}. ${n} loved to play in the ${p} with a ${t}. One day, ${n} saw a ${an} near the ${p}. The ${an} was ${pick(feelings)}. ${n} said, "Do you want to play with my ${t}?" The ${an} was very ${pick(feelings)}. They played all day. ${m} came to the ${p} too. "Can I play?" asked ${m}. ${n} said, "Yes, let's play together!" They were all very happy. The end.`;
  });
}
