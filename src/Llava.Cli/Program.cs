Console.WriteLine("llava");
