/** SDK version sent in results and presence heartbeats; kept equal to package.json by a test. */
export const VERSION = '0.1.0'
