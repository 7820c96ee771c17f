// Reference harness for facturflow's benchmarks (issue 5): the official Schematron XSLTs applied by
// Java Saxon-HE (Debian's libsaxonhe-java) in one JVM, with N threads, after a warm-up.
// Benchmark-only: never part of the library. Compiled at run time by benchmarks/reference.py.
//
// Usage: java -cp Saxon-HE.jar:CACHE SaxonBench JOBS.tsv THREADS WARMUP_SECONDS MIN_WARMUP_PASSES REPEAT
//   JOBS.tsv: one line per document: <xml path> TAB <stylesheet path>[,<stylesheet path>...]
// Prints one JSON object on stdout.
//    or: java -cp ... SaxonBench JOBS.tsv svrl OUTDIR
//   No timing: one serial pass writing each SVRL report to OUTDIR/<job>-<stylesheet>.svrl (both
//   0-based, in JOBS.tsv order), or the error to OUTDIR/<job>-<stylesheet>.error; prints the JSON
//   {"saxon":...,"compile_errors":{...}} (benchmarks/equivalence.py compares the reports).

import java.io.File;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.nio.file.Files;
import java.nio.file.Paths;
import javax.xml.transform.stream.StreamSource;

import net.sf.saxon.s9api.DocumentBuilder;
import net.sf.saxon.s9api.Processor;
import net.sf.saxon.s9api.Serializer;
import net.sf.saxon.s9api.XdmNode;
import net.sf.saxon.s9api.XsltCompiler;
import net.sf.saxon.s9api.XsltExecutable;
import net.sf.saxon.s9api.XsltTransformer;

public final class SaxonBench {
    private static final class Job {
        final String xml;
        final List<String> stylesheets = new ArrayList<>();
        Job(String xml) { this.xml = xml; }
    }

    private static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    private static List<Job> readJobs(String path) throws Exception {
        List<Job> jobs = new ArrayList<>();
        for (String line : Files.readAllLines(Paths.get(path))) {
            if (line.isBlank()) continue;
            String[] cols = line.split("\t");
            Job job = new Job(cols[0]);
            for (String s : cols[1].split(",")) job.stylesheets.add(s);
            jobs.add(job);
        }
        return jobs;
    }

    private static void writeReports(List<Job> jobs, File outDir) throws Exception {
        Processor processor = new Processor(false);
        XsltCompiler compiler = processor.newXsltCompiler();
        Map<String, XsltExecutable> compiled = new LinkedHashMap<>();
        Map<String, String> compileErrors = new LinkedHashMap<>();
        DocumentBuilder builder = processor.newDocumentBuilder();
        for (int i = 0; i < jobs.size(); i++) {
            Job job = jobs.get(i);
            XdmNode doc = null;
            String parseError = null;
            try {
                doc = builder.build(new File(job.xml));
            } catch (Exception e) {
                parseError = "parse: " + e.getMessage();
            }
            for (int j = 0; j < job.stylesheets.size(); j++) {
                String s = job.stylesheets.get(j);
                if (!compiled.containsKey(s) && !compileErrors.containsKey(s)) {
                    try {
                        compiled.put(s, compiler.compile(new StreamSource(new File(s))));
                    } catch (Exception e) {
                        compileErrors.put(s, String.valueOf(e.getMessage()));
                    }
                }
                String base = i + "-" + j;
                String error = parseError;
                if (error == null && !compiled.containsKey(s)) error = "compile: " + compileErrors.get(s);
                if (error == null) {
                    try {
                        XsltTransformer t = compiled.get(s).load();
                        StringWriter out = new StringWriter();
                        t.setInitialContextNode(doc);
                        t.setDestination(processor.newSerializer(out));
                        t.transform();
                        Files.write(new File(outDir, base + ".svrl").toPath(),
                            out.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
                        continue;
                    } catch (Exception e) {
                        error = String.valueOf(e.getMessage());
                    }
                }
                Files.write(new File(outDir, base + ".error").toPath(),
                    error.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }
        }
        StringBuilder o = new StringBuilder("{");
        o.append("\"saxon\":").append(json(processor.getSaxonProductVersion()));
        o.append(",\"compile_errors\":{");
        int i = 0;
        for (Map.Entry<String, String> e : compileErrors.entrySet()) {
            if (i++ > 0) o.append(',');
            o.append(json(e.getKey())).append(':').append(json(e.getValue()));
        }
        o.append("}}");
        System.out.println(o);
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 3 && args[1].equals("svrl")) {
            writeReports(readJobs(args[0]), new File(args[2]));
            return;
        }
        if (args.length != 5 && !(args.length == 6 && args[5].equals("stdin"))) {
            System.err.println("usage: SaxonBench JOBS.tsv THREADS WARMUP_SECONDS MIN_WARMUP_PASSES REPEAT [stdin]"
                + " | SaxonBench JOBS.tsv svrl OUTDIR");
            System.exit(2);
        }
        // "stdin": after the warm-up, print one line {"warm":...}, then time one pass per "pass"
        // line read (printing {"wall":...,"cpu":...}) until "end": the caller interleaves its
        // own runs between the reference's passes.
        final boolean interactive = args.length == 6;
        final int threads = Integer.parseInt(args[1]);
        final double warmupSeconds = Double.parseDouble(args[2]);
        final int minWarmupPasses = Integer.parseInt(args[3]);
        final int repeat = Integer.parseInt(args[4]);

        List<Job> jobs = readJobs(args[0]);

        final Processor processor = new Processor(false);
        XsltCompiler compiler = processor.newXsltCompiler();
        final Map<String, XsltExecutable> compiled = new LinkedHashMap<>();
        Map<String, Double> compileSeconds = new LinkedHashMap<>();
        Map<String, String> compileErrors = new LinkedHashMap<>();
        for (Job job : jobs) {
            for (String s : job.stylesheets) {
                if (compiled.containsKey(s) || compileErrors.containsKey(s)) continue;
                long t0 = System.nanoTime();
                try {
                    compiled.put(s, compiler.compile(new StreamSource(new File(s))));
                    compileSeconds.put(s, (System.nanoTime() - t0) / 1e9);
                } catch (Exception e) {
                    String msg = String.valueOf(e.getMessage());
                    compileErrors.put(s, msg.length() > 300 ? msg.substring(0, 300) : msg);
                }
            }
        }

        // Per-thread DocumentBuilder and transformers: they are not thread-safe, executables are.
        final ThreadLocal<DocumentBuilder> builders =
            ThreadLocal.withInitial(processor::newDocumentBuilder);
        final ThreadLocal<Map<String, XsltTransformer>> transformers =
            ThreadLocal.withInitial(LinkedHashMap::new);
        final AtomicLong transforms = new AtomicLong();
        final AtomicLong failedAsserts = new AtomicLong();
        final Map<String, String> runtimeErrors = new java.util.concurrent.ConcurrentHashMap<>();

        ExecutorService pool = Executors.newFixedThreadPool(threads);
        java.util.function.Supplier<Double> pass = () -> {
            long t0 = System.nanoTime();
            List<Future<?>> futures = new ArrayList<>();
            for (Job job : jobs) {
                futures.add(pool.submit(() -> {
                    // Parse once per document, as a validator does, then apply each stylesheet.
                    XdmNode doc;
                    try {
                        doc = builders.get().build(new File(job.xml));
                    } catch (Exception e) {
                        runtimeErrors.put(job.xml, "parse: " + e.getMessage());
                        return;
                    }
                    for (String s : job.stylesheets) {
                        XsltExecutable exe = compiled.get(s);
                        if (exe == null) continue;
                        try {
                            XsltTransformer t = transformers.get().computeIfAbsent(s, k -> exe.load());
                            StringWriter out = new StringWriter();
                            Serializer ser = processor.newSerializer(out);
                            t.setInitialContextNode(doc);
                            t.setDestination(ser);
                            t.transform();
                            String svrl = out.toString();
                            int n = 0;
                            for (int i = svrl.indexOf("<svrl:failed-assert"); i >= 0;
                                 i = svrl.indexOf("<svrl:failed-assert", i + 1)) n++;
                            failedAsserts.addAndGet(n);
                            transforms.incrementAndGet();
                        } catch (Exception e) {
                            runtimeErrors.put(job.xml + " " + s, String.valueOf(e.getMessage()));
                        }
                    }
                }));
            }
            for (Future<?> f : futures) {
                try { f.get(); } catch (Exception e) { throw new RuntimeException(e); }
            }
            return (System.nanoTime() - t0) / 1e9;
        };

        long w0 = System.nanoTime();
        int warmupPasses = 0;
        while (warmupPasses < minWarmupPasses || (System.nanoTime() - w0) / 1e9 < warmupSeconds) {
            pass.get();
            warmupPasses++;
        }
        double warmupWall = (System.nanoTime() - w0) / 1e9;
        long warmTransforms = transforms.get();

        transforms.set(0);
        failedAsserts.set(0);
        List<Double> walls = new ArrayList<>();
        List<Double> cpus = new ArrayList<>();
        com.sun.management.OperatingSystemMXBean os =
            (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean();
        if (interactive) {
            System.out.println("{\"warm\":true,\"warmup_passes\":" + warmupPasses + "}");
            System.out.flush();
            java.io.BufferedReader in = new java.io.BufferedReader(
                new java.io.InputStreamReader(System.in, java.nio.charset.StandardCharsets.UTF_8));
            for (String line = in.readLine(); line != null && !line.trim().equals("end");
                 line = in.readLine()) {
                if (!line.trim().equals("pass")) continue;
                long c0 = os.getProcessCpuTime();
                double wall = pass.get();
                double cpu = (os.getProcessCpuTime() - c0) / 1e9;
                walls.add(wall);
                cpus.add(cpu);
                System.out.println("{\"wall\":" + wall + ",\"cpu\":" + cpu + "}");
                System.out.flush();
            }
        }
        for (int r = 0; !interactive && r < repeat; r++) {
            // CPU seconds of the whole JVM (all threads, GC and JIT included) during the pass:
            // unlike wall time, not inflated by other processes sharing the cores.
            long c0 = os.getProcessCpuTime();
            walls.add(pass.get());
            cpus.add((os.getProcessCpuTime() - c0) / 1e9);
        }
        pool.shutdown();
        pool.awaitTermination(1, TimeUnit.MINUTES);

        StringBuilder o = new StringBuilder("{");
        o.append("\"saxon\":").append(json(processor.getSaxonProductVersion())).append(',');
        o.append("\"java\":").append(json(System.getProperty("java.version"))).append(',');
        o.append("\"threads\":").append(threads).append(',');
        o.append("\"documents\":").append(jobs.size()).append(',');
        o.append("\"warmup_passes\":").append(warmupPasses).append(',');
        o.append("\"warmup_transforms\":").append(warmTransforms).append(',');
        o.append("\"warmup_seconds\":").append(warmupWall).append(',');
        o.append("\"timed_transforms\":").append(transforms.get()).append(',');
        o.append("\"timed_failed_asserts\":").append(failedAsserts.get()).append(',');
        o.append("\"pass_seconds\":").append(walls.toString()).append(',');
        o.append("\"pass_cpu_seconds\":").append(cpus.toString()).append(',');
        o.append("\"compile_seconds\":{");
        int i = 0;
        for (Map.Entry<String, Double> e : compileSeconds.entrySet()) {
            if (i++ > 0) o.append(',');
            o.append(json(e.getKey())).append(':').append(e.getValue());
        }
        o.append("},\"compile_errors\":{");
        i = 0;
        for (Map.Entry<String, String> e : compileErrors.entrySet()) {
            if (i++ > 0) o.append(',');
            o.append(json(e.getKey())).append(':').append(json(e.getValue()));
        }
        o.append("},\"runtime_errors\":{");
        i = 0;
        for (Map.Entry<String, String> e : runtimeErrors.entrySet()) {
            if (i++ > 0) o.append(',');
            o.append(json(e.getKey())).append(':').append(json(e.getValue()));
        }
        o.append("}}");
        System.out.println(o);
    }
}
