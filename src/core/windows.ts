/**
 * Windows for texts longer than a model's context. Window k covers token positions
 * [k·stride, k·stride + context) with stride = context/2 (rounded down), so consecutive windows
 * overlap by half. Each token is scored once: in the first window every token from 1 on;
 * in later windows only the tokens past the previous window's end, so every scored token
 * after the first window sees at least context − stride tokens before it.
 */
export interface TextWindow {
  start: number;
  end: number;
  /** first token position scored in this window */
  scoreFrom: number;
}

export function planWindows(length: number, context: number): TextWindow[] {
  if (!(context >= 2)) throw new RangeError(`context ${context} is too short to analyse text`);
  if (length <= context) return [{ start: 0, end: length, scoreFrom: 1 }];
  const stride = Math.max(1, Math.floor(context / 2));
  const windows: TextWindow[] = [{ start: 0, end: context, scoreFrom: 1 }];
  while (windows[windows.length - 1].end < length) {
    const prevEnd = windows[windows.length - 1].end;
    const start = Math.min(windows[windows.length - 1].start + stride, length - context);
    windows.push({ start, end: Math.min(start + context, length), scoreFrom: prevEnd });
  }
  return windows;
}
