using System.CommandLine;
using XenBackends.Service.Cli;
using XenBackends.Service.Hosting;

var configOption = new Option<string?>("--config") { Description = "Configuration file (default /etc/xen-backends/config.json)" };
var xenstoreOption = new Option<string?>("--xenstore-socket") { Description = "xenstored's socket (default: $XENSTORED_PATH, /run/xenstored/socket, /dev/xen/xenbus)" };
var simHostOption = new Option<string?>("--sim-host-socket") { Description = "Serve a simulated Xen host instead of real Xen (used by `sim` and tests)" };

var serve = new Command("serve", "Run the supervisor: one worker process per guest with backend devices");
serve.Options.Add(configOption);
serve.Options.Add(xenstoreOption);
serve.Options.Add(simHostOption);
serve.SetAction((result, ct) => ServeCommand.RunAsync(
    result.GetValue(configOption), new HostSpec(result.GetValue(xenstoreOption), result.GetValue(simHostOption)), ct));

var domidOption = new Option<uint>("--domid") { Description = "The guest this worker serves", Required = true };
var worker = new Command("worker", "Serve one guest's devices (started by `serve`, not for humans)") { Hidden = true };
worker.Options.Add(domidOption);
worker.Options.Add(xenstoreOption);
worker.Options.Add(simHostOption);
worker.SetAction((result, _) => WorkerCommandLine.RunAsync(
    result.GetValue(domidOption), new HostSpec(result.GetValue(xenstoreOption), result.GetValue(simHostOption))));

var socketOption = new Option<string?>("--socket") { Description = "Control socket (default: controlSocket from the configuration)" };
var jsonOption = new Option<bool>("--json") { Description = "Print the status as JSON for scripts" };
var status = new Command("status", "Show guests, devices, xenbus states and counters of the running supervisor");
status.Options.Add(configOption);
status.Options.Add(socketOption);
status.Options.Add(jsonOption);
status.SetAction((result, ct) => StatusCommand.RunAsync(
    result.GetValue(configOption), result.GetValue(socketOption), result.GetValue(jsonOption), Console.Out, Console.Error, ct));

var secondsOption = new Option<int>("--seconds") { Description = "How long the guest drives its devices", DefaultValueFactory = _ => 10 };
var depthOption = new Option<int>("--queue-depth") { Description = "Random 4 KiB requests in flight", DefaultValueFactory = _ => 16 };
var logOption = new Option<bool>("--log") { Description = "Print the service's log (supervisor and workers) on stderr as it happens" };
var sim = new Command("sim", "Demo without Xen: a simulated host, the service and a guest driving a disk and a NIC through it");
sim.Options.Add(secondsOption);
sim.Options.Add(depthOption);
sim.Options.Add(logOption);
secondsOption.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 86400) r.AddError("--seconds must be 1..86400"); });
depthOption.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 128) r.AddError("--queue-depth must be 1..128"); });
sim.SetAction((result, ct) => XenBackends.Service.Sim.SimCommand.RunAsync(
    result.GetValue(secondsOption), result.GetValue(depthOption), result.GetValue(logOption), Console.Out, Console.Error, ct));

var root = new RootCommand("User-space Xen block and network backends for dom0") { serve, worker, status, sim };
var parsed = root.Parse(args);
// Ctrl+C during `sim` must still destroy the guest and remove its image and tap: give the teardown
// time instead of System.CommandLine's default 2 s. Other commands keep the default.
var invocation = new InvocationConfiguration();
if (parsed.CommandResult.Command == sim) invocation.ProcessTerminationTimeout = TimeSpan.FromSeconds(60);
return await parsed.InvokeAsync(invocation);
