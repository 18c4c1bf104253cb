// The console (see index.html).
